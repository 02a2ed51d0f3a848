"""Render the SVG icon to the PNG sizes Linux menus use and to a Windows .ico, into build/icons/."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SVG = ROOT / "resources" / "icons" / "bdc-workstation.svg"
SIZES = (16, 24, 32, 48, 64, 128, 256)


def main(out: Path = ROOT / "build" / "icons") -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(SVG))
    if not renderer.isValid():
        print(f"cannot read {SVG}", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    for size in SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(0)
        painter = QPainter(image)
        renderer.render(painter)
        painter.end()
        image.save(str(out / f"bdc-workstation-{size}.png"))
        if size == 256 and not image.save(str(out / "bdc-workstation.ico")):
            print("this Qt cannot write .ico files", file=sys.stderr)
            return 1
    print(f"icons in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
