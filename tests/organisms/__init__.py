"""Tests of persona_probe/organisms/ (a package, so test files may share names across folders)."""
