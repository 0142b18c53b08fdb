"""kp.markdown.table, the one Markdown table of every report: its exact text, and names that would break a row."""

from kp import markdown


def test_a_table_is_a_header_a_rule_and_one_line_per_row():
    assert markdown.table(["split", "images"], [("train", 40), ("val", 12)]) == (
        "| split | images |\n|---|---|\n| train | 40 |\n| val | 12 |\n"
    )


def test_pipes_and_line_breaks_in_cells_cannot_break_a_row():
    text = markdown.table(["name", "note"], [("paw|left", "two\nlines")])
    assert text.splitlines()[2] == "| paw\\|left | two lines |"
    assert markdown.table(["a"], []) == "| a |\n|---|\n"
