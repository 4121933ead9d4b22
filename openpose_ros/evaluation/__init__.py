"""Measuring: COCO keypoint AP of a learner (learner_eval) and of a decoder on oracle maps (metrics)."""
