"""What the installer sees and answers during a calibration: lines, progress, questions."""

import sys

from citynode.errors import UsageError


class Ui:
    """Lines for the installer; questions only when stdin is a terminal."""

    def __init__(self, out=None, interactive=None, quiet=False):
        self.out = out if out is not None else sys.stdout
        self.interactive = sys.stdin.isatty() if interactive is None else interactive
        self.quiet = quiet
        self._last_progress = None

    def say(self, text):
        print(text, file=self.out, flush=True)

    def progress(self, text):
        """A status line that repeats: printed only when it changes."""
        if text != self._last_progress:
            self._last_progress = text
            if not self.quiet:
                self.say("  " + text)

    def ask(self, prompt, needed_option):
        if not self.interactive:
            raise UsageError("%s: stdin is not a terminal, give %s" % (prompt, needed_option))
        try:
            return input(prompt + ": ").strip()
        except EOFError:
            raise UsageError("%s: no answer (give %s)" % (prompt, needed_option)) from None

    def wait_enter(self, prompt):
        """Interactive: wait for Enter. Otherwise: nothing (the flow detects by itself)."""
        if self.interactive:
            try:
                input(prompt + " [Enter] ")
            except EOFError:
                pass


def fmt_values(values, spec):
    return "[" + ", ".join(spec % v for v in values) + "]"
