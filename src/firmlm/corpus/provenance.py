"""Per-document provenance besides the path: the license (SPDX header, else the repository's LICENSE /
COPYING file, else Debian's copyright file) and the silicon vendor, where the path or text tells it."""

from __future__ import annotations

import re
import tarfile
from pathlib import Path

LICENSE_FILES = re.compile(r"^(LICEN[CS]E|COPYING|COPYRIGHT)([._-].*)?$", re.I)
# (SPDX id, phrases that must all occur), most specific first
LICENSE_TEXTS: list[tuple[str, tuple[str, ...]]] = [
    ("LGPL-3.0", ("GNU LESSER GENERAL PUBLIC LICENSE", "Version 3")),
    ("LGPL-2.1", ("GNU LESSER GENERAL PUBLIC LICENSE", "Version 2.1")),
    ("LGPL-2.0", ("GNU LIBRARY GENERAL PUBLIC LICENSE",)),
    ("AGPL-3.0", ("GNU AFFERO GENERAL PUBLIC LICENSE",)),
    ("GPL-3.0", ("GNU GENERAL PUBLIC LICENSE", "Version 3")),
    ("GPL-2.0", ("GNU GENERAL PUBLIC LICENSE", "Version 2")),
    ("Apache-2.0", ("Apache License", "Version 2.0")),
    ("MPL-2.0", ("Mozilla Public License", "2.0")),
    ("MIT", ("Permission is hereby granted, free of charge",)),
    ("BSD-3-Clause", ("Redistribution and use in source and binary forms", "Neither the name")),
    ("BSD-2-Clause", ("Redistribution and use in source and binary forms",)),
    ("Zlib", ("This software is provided 'as-is', without any express or implied",)),
]
SPDX = re.compile(r"SPDX-License-Identifier:\s*([A-Za-z0-9.+() -]+?)\s*(\*/|$)", re.M)

VENDORS: list[tuple[str, re.Pattern[str]]] = [
    (name, re.compile(pattern, re.I))
    for name, pattern in [
        ("STMicroelectronics", r"(^|[/_.-])(stm32\w*|stm8\w*|st|stmicro\w*)([/_.-]|$)"),
        ("NXP", r"(^|[/_.-])(nxp|imx\w*|mxc\w*|freescale|fsl|kinetis|lpc\d*\w*|s32\w*)([/_.-]|$)"),
        ("Nordic Semiconductor", r"(^|[/_.-])(nordic|nrf\d*\w*)([/_.-]|$)"),
        ("Microchip", r"(^|[/_.-])(microchip|atmel|avr\w*|sam[a-z0-9]*|pic\d+\w*|at91\w*|xmega\w*|attiny\w*|atmega\w*)([/_.-]|$)"),
        ("Texas Instruments", r"(^|[/_.-])(ti|omap\w*|msp430\w*|cc\d{4}\w*|wl\d{4}\w*|davinci|keystone|k3)([/_.-]|$)"),
        ("Infineon", r"(^|[/_.-])(infineon|aurix|tricore|xmc\d*\w*|cypress|psoc\w*)([/_.-]|$)"),
        ("Renesas", r"(^|[/_.-])(renesas|rcar\w*|rza\w*|rzg\w*|rmobile)([/_.-]|$)"),
        ("Espressif", r"(^|[/_.-])(espressif|esp32\w*|esp8266\w*)([/_.-]|$)"),
        ("AMD", r"(^|[/_.-])(amd\w*|amdgpu|radeon|xilinx|zynq\w*)([/_.-]|$)"),
        ("Broadcom", r"(^|[/_.-])(broadcom|bcm\d*\w*|brcm\w*)([/_.-]|$)"),
        ("Rockchip", r"(^|[/_.-])(rockchip|rk\d{4}\w*)([/_.-]|$)"),
        ("Allwinner", r"(^|[/_.-])(allwinner|sunxi|sun\di\w*)([/_.-]|$)"),
        ("MediaTek", r"(^|[/_.-])(mediatek|mtk\w*|mt\d{4}\w*)([/_.-]|$)"),
        ("Qualcomm", r"(^|[/_.-])(qcom|qualcomm|msm\d*\w*|snapdragon)([/_.-]|$)"),
        ("Raspberry Pi", r"(^|[/_.-])(rp2040|rpi|raspberrypi)([/_.-]|$)"),
        ("Arm", r"(^|[/_.-])(cmsis|cortex[-_]?m\d*\w*|arm_?v[678]\w*)([/_.-]|$)"),
    ]
]


def spdx_header(text: str) -> str | None:
    """The SPDX id from a ``SPDX-License-Identifier`` header in the first 2 KB, if any."""
    m = SPDX.search(text[:2048])
    return m.group(1).strip() if m else None


def license_of_text(text: str) -> str | None:
    """SPDX id of a license text (LICENSE / COPYING file), recognized by its characteristic phrases."""
    head = " ".join(text[:20000].split())
    return next((spdx for spdx, phrases in LICENSE_TEXTS if all(p in head for p in phrases)), None)


def repository_license(root: Path) -> str | None:
    """The license of a tree from a LICENSE / COPYING file at its root (SPDX header inside it first)."""
    try:
        candidates = sorted(p for p in root.iterdir() if p.is_file() and LICENSE_FILES.match(p.name))
    except OSError:
        return None
    for path in candidates:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        found = spdx_header(text) or license_of_text(text)
        if found:
            return found
    return None


def debian_copyright_license(download_dir: Path) -> str | None:
    """The ``License:`` of the ``Files: *`` stanza of debian/copyright, read from the package's debian tarball."""
    for tarball in sorted(download_dir.glob("*.debian.tar.*")):
        try:
            with tarfile.open(tarball) as tf:
                member = tf.extractfile("debian/copyright")
                text = member.read().decode("utf-8", errors="replace") if member else ""
        except (KeyError, tarfile.TarError, OSError):
            continue
        for stanza in re.split(r"\n\s*\n", text):
            if re.search(r"^Files:\s*\*\s*$", stanza, re.M):
                m = re.search(r"^License:\s*(\S+)", stanza, re.M)
                if m:
                    return m.group(1)
    return None


def vendor_of(repo: str, path: str) -> str:
    """The silicon vendor named by the path (first match in VENDORS order), else ''."""
    target = f"{repo}/{path}"
    return next((name for name, pattern in VENDORS if pattern.search(target)), "")
