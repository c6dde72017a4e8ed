"""Math in feedback pages, rendered when the page is written: TeX in markdown cells becomes MathML.

nbconvert's HTML leaves `$...$` for MathJax to typeset in the reader's browser, from a CDN; a student
reading feedback offline, or an instructor's machine that may fetch nothing, sees raw dollar signs. Every
current browser renders MathML itself, so the conversion is done once, here, and the page needs no script
and no network. Code (fenced blocks and backtick spans) is left alone, as is an escaped `\\$`; a formula
the converter cannot read is kept as its TeX inside <code>, without dollar signs.
"""

from __future__ import annotations

import html
import re
from typing import Any

from latex2mathml.converter import convert

# code first, so that dollars inside code are never taken for math
_TOKENS = re.compile(
    r"(?P<fence>^[ \t]*(?P<fq>```|~~~).*?^[ \t]*(?P=fq)[ \t]*$)"
    r"|(?P<code>(?P<tick>`+).*?(?<!`)(?P=tick)(?!`))"
    r"|(?P<escaped>\\\$)"
    r"|\$\$(?P<display>.+?)\$\$"
    r"|\\\[(?P<display2>.+?)\\\]"
    r"|\\\((?P<inline2>.+?)\\\)"
    r"|(?<![\w$])\$(?P<inline>[^\s$](?:[^$\n]|\n(?!\s*\n))*?)(?<![\s\\])\$(?![\w$])",
    re.S | re.M,
)

_NESTED = re.compile(r"\$([^$]+)\$")


def tex_to_mathml(tex: str, *, display: bool) -> str:
    """One formula as MathML (block or inline); unreadable TeX is kept visible as code."""
    # math inside \text{...} of a display formula ("over the parents $u$ of $v$") leaves the text there
    tex = _NESTED.sub(lambda m: "}" + m.group(1) + "\\text{", tex.strip())
    try:
        return convert(tex, display="block" if display else "inline")
    except Exception:  # noqa: BLE001 - the converter's errors vary; the reader still sees the formula
        return f"<code>{html.escape(tex.strip())}</code>"


def markdown_with_mathml(source: str) -> str:
    """Markdown with every TeX formula replaced by MathML (which markdown passes through as HTML)."""

    def replace(m: re.Match[str]) -> str:
        if m.group("fence") or m.group("code"):
            return m.group(0)
        if m.group("escaped"):
            return "&#36;"
        display = m.group("display") or m.group("display2")
        if display is not None:
            return "\n\n" + tex_to_mathml(display, display=True) + "\n\n"
        inline = m.group("inline") if m.group("inline") is not None else m.group("inline2")
        return tex_to_mathml(inline, display=False)

    return _TOKENS.sub(replace, source)


def notebook_with_mathml(nb: Any) -> Any:
    """Convert the math of every markdown cell (prose and students' written answers), in place."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = markdown_with_mathml(cell.source)
    return nb


_MATHJAX_SCRIPTS = re.compile(
    r"<!-- Load(?:ing)? mathjax[^>]*-->\s*|<script[^>]*src=\"[^\"]*mathjax[^\"]*\"[^>]*>\s*</script>\s*"
    r"|<!-- MathJax configuration -->\s*<script type=\"text/x-mathjax-config\">.*?</script>\s*",
    re.S | re.I)


def without_remote_mathjax(page: str) -> str:
    """The page without nbconvert's MathJax loader: its math is MathML already, and it fetches nothing."""
    return _MATHJAX_SCRIPTS.sub("", page)
