"""Tests of persona_probe/stress/ (a package, so test files may share names across folders)."""
