"""Tests of persona_probe/analysis/ (a package, so test files may share names across folders)."""
