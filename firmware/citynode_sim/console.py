# The virtual node's console: lines for the person running it (stderr of
# `citynode sim`, VirtualNode.log), not for the node's serial link, where a
# host tool reads frames. runtime.py hands over its pipe to the supervisor;
# a line goes as b"S" + UTF-8 text + b"\n" (one write, so it arrives whole).
# Without a supervisor (firmware tests) `said` keeps the lines.

pipe = None  # set by runtime.py
said = []  # the lines, when there is no pipe


def say(text):
    line = text.replace("\n", " ")
    if pipe is None:
        said.append(line)
        return
    try:
        pipe.write(b"S" + line.encode() + b"\n")
        pipe.flush()
    except OSError:
        pass
