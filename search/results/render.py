"""Render one report as Markdown (images linked) and as self-contained HTML (images embedded)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: list[tuple[str, ...]]


@dataclass(frozen=True)
class Image:
    title: str
    path: Path | None  # None when the plot could not be drawn
    note: str = ""  # why it is missing


@dataclass(frozen=True)
class Text:
    text: str


Block = Table | Image | Text


@dataclass
class Section:
    heading: str
    blocks: list[Block] = field(default_factory=list)


def _md_cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ")


def _md_block(block: Block, root: Path) -> str:
    if isinstance(block, Text):
        return block.text
    if isinstance(block, Table):
        lines = ["| " + " | ".join(block.headers) + " |",
                 "|" + "---|" * len(block.headers)]
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
        return "\n".join(lines)
    if block.path is None:
        return f"**{block.title}**: {block.note}"
    return f"**{block.title}**\n\n![{block.title}]({block.path.relative_to(root).as_posix()})"


def markdown(title: str, sections: list[Section], root: Path) -> str:
    """Markdown with image links relative to ``root`` (the report folder)."""
    parts = [f"# {title}"]
    for section in sections:
        parts.append(f"## {section.heading}")
        parts += [_md_block(block, root) for block in section.blocks]
    return "\n\n".join(parts) + "\n"


def _html_block(block: Block) -> str:
    if isinstance(block, Text):
        return f"<p>{html.escape(block.text)}</p>"
    if isinstance(block, Table):
        head = "".join(f"<th>{html.escape(h)}</th>" for h in block.headers)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                       for row in block.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if block.path is None:
        return f"<p><b>{html.escape(block.title)}</b>: {html.escape(block.note)}</p>"
    data = base64.b64encode(block.path.read_bytes()).decode("ascii")
    return (f"<figure><img alt=\"{html.escape(block.title)}\" src=\"data:image/png;base64,{data}\">"
            f"<figcaption>{html.escape(block.title)}</figcaption></figure>")


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }
th { background: #f3f3f3; }
figure { margin: 1.5em 0; }
img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
"""


def html_page(title: str, sections: list[Section]) -> str:
    """One HTML file with every image embedded as base64: it can be mailed or opened offline."""
    body = [f"<h1>{html.escape(title)}</h1>"]
    for section in sections:
        body.append(f"<h2>{html.escape(section.heading)}</h2>")
        body += [_html_block(block) for block in section.blocks]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")
