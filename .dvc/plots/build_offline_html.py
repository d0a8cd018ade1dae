"""Build offline.html, the HTML template of `dvc plots show` (.dvc/config: plots.html_template), with Vega,
Vega-Lite and Vega-Embed inlined so the page renders without internet (DVC's own page loads them from a CDN).

Usage, from the repository root (npm only fetches the three packages' tarballs from the registry):
    cd /tmp && npm pack vega@5.20.2 vega-lite@5.2.0 vega-embed@6.18.2 && for f in vega*.tgz; do
      mkdir -p "${f%.tgz}" && tar xzf "$f" -C "${f%.tgz}"; done && cd -
    python .dvc/plots/build_offline_html.py /tmp
The versions are the ones DVC's renderer (dvc-render) loads; their BSD-3-Clause licences are in vendor/.
"""

import sys
from pathlib import Path

PACKAGES = [("vega", "5.20.2", "vega.min.js"), ("vega-lite", "5.2.0", "vega-lite.min.js"),
            ("vega-embed", "6.18.2", "vega-embed.min.js")]  # fmt: skip

PAGE = """<!DOCTYPE html>
<html>
<head>
    {{refresh_tag}}
    <meta charset="utf-8">
    <title>SiaSamRea: DVC plots</title>
{scripts}
    <style>
        body {{ font-family: sans-serif; }}
        table {{ border-spacing: 15px; }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def main(src: str) -> None:
    scripts = []
    for name, version, file in PACKAGES:
        js = (Path(src) / f"{name}-{version}" / "package" / "build" / file).read_text()
        if "</script" in js or "{plot_divs}" in js or "{scripts}" in js:
            raise ValueError(f"{file} contains a sequence that would break the template")
        scripts.append(f"    <!-- {name} {version} (BSD-3-Clause, see vendor/LICENSE.{name}) -->\n"
                       f"    <script type=\"text/javascript\">{js}</script>")  # fmt: skip
    out = Path(__file__).with_name("offline.html")
    out.write_text(PAGE.format(scripts="\n".join(scripts)))
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp")
