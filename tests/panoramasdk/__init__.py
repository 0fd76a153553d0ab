"""Tests of the panoramasdk compatibility package."""
