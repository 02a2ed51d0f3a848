"""Frozen entry point of the desktop program (PyInstaller needs a script, not a console_scripts)."""

import sys

from ui.main import main

if __name__ == "__main__":
    sys.exit(main())
