"""Markdown text for the reports and the guide's generated tables."""


def cell(text):
    """Text for one Markdown table cell: a `|` would end the cell, a line break the row."""
    return str(text).strip().replace("|", "\\|").replace("\n", " ")
