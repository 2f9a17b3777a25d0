"""The BasicMotions activity model (training/train_basicmotions.py writes this folder)."""
