"""Tests of persona_probe/capping/ (a package, so test files may share names across folders)."""
