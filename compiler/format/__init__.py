"""The canonical formatter (``voxc fmt``): see :mod:`.printer` for the layout and
:mod:`.comments` for how comments are kept."""

from vox.compiler.format.formatter import FormatResult, FormattingBug, format_source
from vox.compiler.format.printer import LINE_WIDTH

__all__ = ["format_source", "FormatResult", "FormattingBug", "LINE_WIDTH"]
