"""Tests of persona_probe/axis/ (a package, so test files may share names across folders)."""
