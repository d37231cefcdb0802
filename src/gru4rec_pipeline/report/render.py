"""How the results summary looks: markdown, an HTML page, an HTML fragment for the report's landing page, TSV.

:mod:`gru4rec_pipeline.report.summary` decides what the summary says and
:mod:`gru4rec_pipeline.report.tables` builds its blocks (``("h1" | "h2" | "h3" | "p", text)``,
``("list", [text, ...])``, ``("table", Table)``, ``("figure", (png_path, text))``); this module lays them out. In
HTML every table sits in a box that scrolls sideways when the window is narrower than the table, so no column is
ever cut off, and a figure is embedded as a ``data:`` URI.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

import pandas as pd

from gru4rec_pipeline.errors import DataFormatError

HEADINGS = {"h1": "# ", "h2": "## ", "h3": "### "}

# (selectors, declarations); the fragment scopes every selector to its element.
TABLE_STYLE = (
    (("h1",), "font-size: 1.4em; margin-bottom: 0.2em;"),
    (("h2",), "font-size: 1.1em; margin-top: 1.4em;"),
    (("h3",), "font-size: 1em; margin: 1em 0 0.2em;"),
    ((".scroll",), "overflow-x: auto; max-width: 100%;"),
    (("figure",), "margin: 0.8em 0;"),
    (("figure img",), "max-width: 100%; height: auto;"),
    (("table",), "border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; width: auto;"),
    (("th", "td"), "border-bottom: 1px solid #ddd; padding: 0.25em 0.55em; text-align: right; white-space: nowrap;"),
    (("th",), "background: #f3f4f6;"),
    (("th.text", "td.text"), "text-align: left;"),
    (("td.text",), "white-space: normal; max-width: 34em;"),
    (("tr.baseline td",), "background: #fafafa; color: #444;"),
    (("tr.oracle td",), "color: #666; font-style: italic;"),
    (("strong",), "color: #0b5394;"),
    (("p", "ul"), "max-width: 62em; font-size: 0.88em; color: #333;"),
)
FONT = 'font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #222;'


def stylesheet(scope: str = "") -> str:
    """The tables' CSS; with ``scope`` (a selector) every rule applies inside that element only."""
    prefix = f"{scope} " if scope else ""
    return "\n".join(f"{', '.join(prefix + s for s in selectors)} {{ {rules} }}" for selectors, rules in TABLE_STYLE)


def render_markdown(blocks: list[tuple]) -> str:
    lines: list[str] = []
    for kind, content in blocks:
        if kind in HEADINGS:
            lines += [HEADINGS[kind] + content, ""]
        elif kind == "p":
            lines += [content, ""]
        elif kind == "list":
            lines += [f"- {item}" for item in content] + [""]
        elif kind == "figure":
            path, text = content
            lines += [f"![{text}]({path})", ""]
        else:
            cells = [[(f"**{t}**" if best else t).replace("|", "/") for t, best in row] for row in content.rows]
            lines += ["| " + " | ".join(content.header) + " |", "|" + "|".join("---" for _ in content.header) + "|"]
            lines += ["| " + " | ".join(row) + " |" for row in cells] + [""]
    return "\n".join(lines)


def html_table(table) -> str:
    text_css = [' class="text"' if i < table.text_columns else "" for i in range(len(table.header))]
    rows = ["<tr>" + "".join(f"<th{css}>{escape(h)}</th>" for h, css in zip(table.header, text_css)) + "</tr>"]
    for cells, row_class in zip(table.rows, table.row_classes):
        tds = "".join(
            f"<td{css}>{f'<strong>{escape(t)}</strong>' if best else escape(t)}</td>"
            for (t, best), css in zip(cells, text_css)
        )
        rows.append(f'<tr class="{escape(row_class)}">{tds}</tr>')
    return '<div class="scroll"><table>\n' + "\n".join(rows) + "\n</table></div>"


def png_data_uri(path) -> str:
    """The PNG file at ``path`` as a ``data:`` URI: a page that holds its figures needs no files beside it."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise DataFormatError(path, "figure not found; its plot stage writes it") from None
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise DataFormatError(path, "not a PNG image")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def html_body(blocks: list[tuple]) -> str:
    body = []
    for kind, content in blocks:
        if kind in HEADINGS or kind == "p":
            body.append(f"<{kind}>{escape(content)}</{kind}>")
        elif kind == "list":
            body.append("<ul>" + "".join(f"<li>{escape(item)}</li>" for item in content) + "</ul>")
        elif kind == "figure":
            path, text = content
            body.append(f'<figure><img src="{png_data_uri(path)}" alt="{escape(text)}"></figure>')
        else:
            body.append(html_table(content))
    return "\n".join(body)


def render_html(blocks: list[tuple]) -> str:
    """A page of its own (the report shows it as a result)."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Results</title>'
        f"<style>\nbody {{ {FONT} margin: 1.2em; }}\n{stylesheet()}\n</style></head>\n<body>\n"
        + html_body(blocks)
        + "\n</body></html>\n"
    )


def render_fragment(blocks: list[tuple], element_id: str) -> str:
    """One ``<div id=element_id>`` with its own style, scoped to it: to embed in another page (the report's landing
    page) without restyling that page."""
    scope = f"#{element_id}"
    return (
        f'<div id="{element_id}">\n<style>\n{scope} {{ {FONT} }}\n{stylesheet(scope)}\n</style>\n'
        + html_body(blocks)
        + "\n</div>\n"
    )


def render_tsv(table: pd.DataFrame, published: pd.DataFrame) -> str:
    """The model rows, then the published rows: plain numbers, empty cells where a value is missing."""
    return pd.concat([table, published], ignore_index=True).to_csv(
        sep="\t", index=False, float_format="%.6g", na_rep=""
    )
