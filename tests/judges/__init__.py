"""Tests of persona_probe/judges/ (a package, so test files may share names across folders)."""
