"""A throwaway PostgreSQL server on a free loopback port: for tests, the demo and trying things.

    with LocalPostgres(tmp_path) as pg:
        pg.url                       # postgresql://citynode_app:PASS@127.0.0.1:PORT/citynode
        pg.create_database("t1")     # a fresh database owned by that user; its URL
        pg.restart()                 # down and up again on the same port, data kept

The server is the real PostgreSQL 15 or newer (Debian package `postgresql`;
`make install` installs it where it can), the newest found in
/usr/lib/postgresql/<version>/bin. Its folder holds the data folder (initdb,
fsync off: a test server), the Unix socket (`-k`) and the log. Two roles:
`citynode` is the superuser, trusted on the socket and on 127.0.0.1, for
creating databases; `citynode_app` has a password, checked on 127.0.0.1
(scram-sha-256), so tests can see a wrong password refused. `.url` is the
password user's.

PostgreSQL refuses to run as root. As root the server runs as Debian's
`postgres` user (or `nobody` where there is none): initdb and postgres are
started with that uid and gid (subprocess's `user=`/`group=`), and the folder
is chowned to it. Where that user cannot reach the folder given (pytest's
tmp_path is below a 0700 folder of root), the server's files live in a
private folder under the system's temporary folder instead, removed by
`close()` (or leaving the block).
"""

import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
from pathlib import Path

from citynode.errors import CitynodeError
from citynode.local_service import LocalService, free_port

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
MIN_VERSION = 15
ADMIN = "citynode"
APP_USER = "citynode_app"
DATABASE = "citynode"
INSTALL_HINT = "`make install` installs it as root; else apt-get install postgresql"


def postgres_path():
    """The `postgres` executable of the newest PostgreSQL >= 15 (initdb beside it), or None."""
    versions = []
    try:
        for entry in os.listdir("/usr/lib/postgresql"):
            if entry.isdigit() and int(entry) >= MIN_VERSION:
                versions.append(int(entry))
    except OSError:
        pass
    for version in sorted(versions, reverse=True):
        exe = "/usr/lib/postgresql/%d/bin/postgres" % version
        if os.access(exe, os.X_OK) and os.access(os.path.join(os.path.dirname(exe), "initdb"), os.X_OK):
            return exe
    found = shutil.which("postgres")
    if found and shutil.which("initdb", path=os.path.dirname(found)):
        return found
    return None


def _server_user():
    """(uid, gid) to run the server as: ourselves, or an unprivileged user when we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return entry.pw_uid, entry.pw_gid
    raise CitynodeError("running as root and neither user postgres nor nobody exists to run PostgreSQL")


def _reachable(folder, uid, gid):
    """Whether uid/gid can traverse `folder` and every folder above it."""
    folder = Path(folder).resolve()
    for parent in (folder, *folder.parents):
        st = parent.stat()
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid == gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


class LocalPostgres(LocalService):
    name = "postgres"
    start_timeout_s = START_TIMEOUT_S
    stop_timeout_s = STOP_TIMEOUT_S
    stop_signal = signal.SIGINT  # fast shutdown: sessions are ended, the data is kept
    ready_poll_s = 0.05

    def __init__(self, folder):
        super().__init__(folder)
        self.password = secrets.token_urlsafe(12)
        self.owner = _server_user()
        self._private = None
        self.home = self.folder / "postgres"
        if self.owner and not _reachable(self.folder, *self.owner):
            self._private = tempfile.mkdtemp(prefix="citynode-pg-")
            os.chmod(self._private, 0o711)
            self.home = Path(self._private) / "postgres"
        self.data = self.home / "data"
        self.log_path = self.home / "postgres.log"

    def url_for(self, database, user=APP_USER, password=None):
        return "postgresql://%s:%s@127.0.0.1:%d/%s" % (user, self.password if password is None else password,
                                                      self.port, database)

    @property
    def url(self):
        return self.url_for(DATABASE)

    @property
    def admin_conninfo(self):
        """The superuser on the Unix socket: trusted, no password."""
        return "host=%s port=%d user=%s dbname=postgres" % (self.home, self.port, ADMIN)

    def _run_as(self):
        return {"user": self.owner[0], "group": self.owner[1], "extra_groups": []} if self.owner else {}

    def _initdb(self, bindir):
        self.home.mkdir(parents=True, exist_ok=True)
        if self.owner:
            os.chown(self.home, *self.owner)
        os.chmod(self.home, 0o700)
        done = subprocess.run(
            [str(bindir / "initdb"), "-D", str(self.data), "-U", ADMIN, "--auth=trust", "-E", "UTF8",
             "--no-locale", "--no-sync"],
            capture_output=True, text=True, **self._run_as())
        if done.returncode:
            lines = (done.stderr or done.stdout).strip().splitlines()
            raise CitynodeError("initdb failed: %s" % (lines[-1] if lines else "exit %d" % done.returncode))
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            "host all %s 127.0.0.1/32 trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n" % ADMIN)

    def start(self):
        exe = postgres_path()
        if exe is None:
            raise CitynodeError("PostgreSQL %d or newer not found: %s" % (MIN_VERSION, INSTALL_HINT))
        fresh = self.port is None
        if fresh:
            self._initdb(Path(exe).parent)
            self.port = free_port()
        log = open(self.log_path, "ab")
        if self.owner:
            os.chown(self.log_path, *self.owner)
        self.proc = subprocess.Popen(
            [exe, "-D", str(self.data), "-p", str(self.port), "-k", str(self.home),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off", "-c", "max_connections=40", "-c", "shared_buffers=64MB"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, **self._run_as())
        log.close()
        self._wait_ready(self._accepts_connections, "accept connections on port %d" % self.port)
        if fresh:
            self._create_roles()
        return self

    def _accepts_connections(self):
        import psycopg

        try:
            psycopg.connect(self.admin_conninfo, connect_timeout=2).close()
            return True
        except psycopg.OperationalError:
            return False

    def _create_roles(self):
        from psycopg import sql

        with self.admin() as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                sql.Identifier(APP_USER), sql.Literal(self.password)))
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(DATABASE), sql.Identifier(APP_USER)))

    def admin(self):
        """A superuser connection in autocommit (CREATE DATABASE cannot run in a transaction)."""
        import psycopg

        return psycopg.connect(self.admin_conninfo, autocommit=True, connect_timeout=5)

    def create_database(self, name, template="template0"):
        """A fresh database owned by the password user, a copy of `template` (default: empty); its URL."""
        from psycopg import sql

        with self.admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE {} STRATEGY FILE_COPY").format(
                sql.Identifier(name), sql.Identifier(APP_USER), sql.Identifier(template)))
        return self.url_for(name)

    def close(self):
        self.stop()
        if self._private:
            shutil.rmtree(self._private, ignore_errors=True)
            self._private = None
