"""The embedded synthetic benchmark: rendered mp4/GIF videos and annotation files in the real datasets'
formats, with the ground truth of where each answer is visible."""
