"""Across frames: track ids (tracker) and keypoint smoothing (smoothing)."""
