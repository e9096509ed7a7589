"""Transcript steps shared by the *_scenario.py scripts: one line per step, "name: result"."""
import errno


def name(e):
    # ENOTSUP and EOPNOTSUPP are one number on Linux; print the name the kernel uses.
    return 'EOPNOTSUPP' if e == errno.EOPNOTSUPP else errno.errorcode.get(e, str(e))


def step(label, fn):
    """Runs fn and prints 'label: OK', 'label: OK:<what fn returned>' or 'label: <errno name>'."""
    try:
        r = fn()
        print('%s: OK%s' % (label, '' if r is None else ':' + str(r)), flush=True)
    except OSError as e:
        print('%s: %s' % (label, name(e.errno)), flush=True)
