"""Rehearsal: the real nginx, Distribution registry and skopeo run on 127.0.0.1 with the exact files
the program renders; only Portus is replaced by a small stand-in (``standin.py``)."""
