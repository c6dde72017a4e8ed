"""TeX in markdown becomes MathML when feedback is written, so it renders with no script and no network."""

from __future__ import annotations

from autograder.course.mathml import markdown_with_mathml, without_remote_mathjax


def test_inline_and_display_formulas_become_mathml():
    out = markdown_with_mathml(r"slope $f'(x)$ and $$\frac{f(x+h)-f(x)}{h}$$ and \(a\) and \[b\]")
    assert out.count('display="inline"') == 2 and out.count('display="block"') == 2
    assert "$" not in out and r"\(" not in out and r"\[" not in out
    assert "<mfrac>" in out


def test_code_escaped_dollars_and_prices_are_left_alone():
    src = "costs \\$5, or `x = $y$` in code, or 5$ and 6$\n\n```python\nprint('$a$')\n```\n"
    out = markdown_with_mathml(src)
    assert "<math" not in out
    assert "`x = $y$`" in out and "print('$a$')" in out and "&#36;5" in out


def test_math_nested_in_text_of_a_display_formula_is_not_left_raw():
    out = markdown_with_mathml(r"$$\bar u = \sum_v \bar v \quad \text{(over the children $v$ of $u$)}$$")
    assert "$" not in out


def test_a_formula_the_converter_cannot_read_stays_visible_as_code():
    out = markdown_with_mathml(r"$\frac{1}{$")
    assert "<code>" in out and "$" not in out.replace("&#36;", "")


def test_nbconvert_mathjax_loader_is_removed():
    page = ('<head><!-- Load mathjax -->\n<script src="https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/'
            'latest.js?config=TeX-AMS_CHTML-full,Safe"> </script>\n<!-- MathJax configuration -->\n'
            '<script type="text/x-mathjax-config">init_mathjax = function() {};</script>\n<style>p{}</style>')
    assert without_remote_mathjax(page) == "<head><style>p{}</style>"
