"""Helpers for integration tests: a real local broker, real service processes, topic readers.

Nothing here is a fake: `Broker` runs the Apache Kafka jars through deploy/kafka/kafka.sh, and
`Service` runs the `carealert` command line in a subprocess, exactly as `make run` does.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import CorruptRecordError

from services.common.escalations import Escalation
from services.common.events import EventBase, parse_event_obj

ROOT = Path(__file__).resolve().parents[1]
KAFKA_SH = ROOT / "deploy" / "kafka" / "kafka.sh"
CAREALERT = ROOT / ".venv" / "bin" / "carealert"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Broker:
    """A real single-node KRaft broker on free loopback ports with its own data dir."""

    def __init__(self, data_dir: Path | None = None, env: dict[str, str] | None = None) -> None:
        """`env`: extra kafka.sh settings (e.g. a SASL_SSL listener)."""
        self.extra_env = env or {}
        self.port = free_port()
        self.controller_port = free_port()
        self._own_dir = data_dir is None
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="carealert-kafka-"))
        self.bootstrap = f"127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "KAFKA_DATA_DIR": str(self.data_dir),
            "KAFKA_HEAP": "-Xmx512m -Xms128m",
            **self.extra_env,
        }

    def start(self) -> None:
        subprocess.run([str(KAFKA_SH), "start"], env=self._env(), check=True, timeout=180)

    def stop(self) -> None:
        subprocess.run([str(KAFKA_SH), "stop"], env=self._env(), check=True, timeout=120)

    def destroy(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


class Service:
    """`carealert <command>` in a subprocess, with its log in a file."""

    def __init__(
        self,
        command: list[str],
        env: dict[str, str],
        port: int,
        log_dir: Path,
        tls_ca: Path | None = None,
    ) -> None:
        """`tls_ca`: the service serves HTTPS with a certificate this CA file verifies."""
        self.command = command
        self.env = {**os.environ, **env}
        self.port = port
        self.verify: Any = trusting(tls_ca) if tls_ca is not None else True
        self.url = f"{'https' if tls_ca else 'http'}://127.0.0.1:{port}"
        self.log_path = log_dir / f"{command[0]}-{port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.wanted = False  # started by the test and not stopped by it: a supervisor restarts it
        self.restarts = 0
        self.lock = threading.RLock()

    def start(self, timeout: float = 60.0) -> None:
        with self.lock:
            log = self.log_path.open("ab")
            self.proc = subprocess.Popen(
                [str(CAREALERT), *self.command], env=self.env, stdout=log, stderr=log
            )
            self.wanted = True
            wait_until(self._healthy, timeout, f"{self.command[0]} /healthz ({self.log_path})")

    def restart_if_exited(self) -> bool:
        """What a supervisor does (k8s, deploy/local/supervise.sh): start again a service that
        exited on its own (a stalled worker exits on purpose)."""
        with self.lock:
            if not self.wanted or self.proc is None or self.proc.poll() is None:
                return False
            self.restarts += 1
            self.start()
            return True

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.command[0]} exited: {self.log_text()[-2000:]}")
        try:
            return (
                httpx.get(f"{self.url}/healthz", timeout=1, verify=self.verify).status_code == 200
            )
        except httpx.HTTPError:
            return False

    def stop(self, kill: bool = False) -> None:
        with self.lock:
            self.wanted = False
            self._stop(kill)

    def _stop(self, kill: bool) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextlib.contextmanager
def supervised(*services: Service, every_s: float = 0.5) -> Iterator[None]:
    """Restart any of `services` that exits on its own while the block runs."""
    done = threading.Event()

    def loop() -> None:
        while not done.wait(every_s):
            for service in services:
                try:
                    service.restart_if_exited()
                except (RuntimeError, TimeoutError):
                    continue  # it exited again during start: tried on the next round

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=120)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]

    def json(self) -> Any:
        """The value as JSON; a record that is not a JSON object (the poison records some tests
        publish on purpose to shared topics) reads as {}."""
        try:
            value = json.loads(self.value)
        except (ValueError, RecursionError):  # RecursionError: JSON nested absurdly deep
            return {}
        return value if isinstance(value, dict) else {}


def read_topic(bootstrap: str, topic: str, timeout: float = 5.0) -> list[Record]:
    """Every record currently on `topic` (all partitions, from the beginning). A record the
    client cannot decode (some tests publish malformed ones on purpose) is left out."""
    consumer = KafkaConsumer(
        bootstrap_servers=[bootstrap],
        enable_auto_commit=False,
        consumer_timeout_ms=int(timeout * 1000),
    )
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        end = consumer.end_offsets(tps)
        out: list[Record] = []
        deadline = time.monotonic() + timeout
        for tp in tps:
            consumer.assign([tp])
            consumer.seek_to_beginning(tp)
            while consumer.position(tp) < end[tp]:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"could not read {topic} to its end in {timeout}s")
                try:
                    polled = consumer.poll(timeout_ms=500)
                except CorruptRecordError:
                    consumer.seek(tp, consumer.position(tp) + 1)
                    continue
                out.extend(
                    Record(
                        tp.topic,
                        tp.partition,
                        m.offset,
                        m.key,
                        m.value if m.value is not None else b"",  # a tombstone reads as b""
                        dict(m.headers or []),
                    )
                    for m in polled.get(tp, [])
                )
        return out
    finally:
        consumer.close()


def wait_for_records(
    bootstrap: str,
    topic: str,
    match: Callable[[Record], bool],
    count: int = 1,
    timeout: float = 60.0,
) -> list[Record]:
    """Poll `topic` until at least `count` records satisfy `match`; return them."""
    found: list[Record] = []

    def enough() -> bool:
        nonlocal found
        found = [r for r in read_topic(bootstrap, topic) if match(r)]
        return len(found) >= count

    wait_until(enough, timeout, f"{count} matching record(s) on {topic}")
    return found


def ts(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def make_event(
    event_type: str,
    payload: dict[str, Any],
    *,
    child_id: str | None = None,
    agency_id: str = "demo-agency",
    occurred_at: datetime | None = None,
    state: str = "MO",
    event_id: str | None = None,
) -> dict[str, Any]:
    """A valid event dict (docs/contract.md shape)."""
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "event_type": event_type,
        "schema_version": 1,
        "agency_id": agency_id,
        "child_id": child_id or f"C-{uuid.uuid4().hex[:8]}",
        "occurred_at": ts(occurred_at or datetime.now(UTC)),
        "jurisdiction": {"state": state, "county": "Jackson"},
        "payload": payload,
    }


def registered(child: str, at: datetime) -> dict[str, Any]:
    """child.registered for `child` (born 2011-05-01), with caseworker W-1 and supervisor S-1."""
    return make_event(
        "child.registered",
        {
            "date_of_birth": "2011-05-01",
            "sex": "female",
            "caseworker_id": "W-1",
            "supervisor_id": "S-1",
        },
        child_id=child,
        occurred_at=at,
    )


def engine_event(
    event_id: str,
    event_type: str,
    payload: dict[str, Any],
    occurred_at: datetime,
    *,
    state: str = "MO",
    county: str | None = None,
    child: str = "C-1",
) -> EventBase:
    """A parsed event for the engine in unit tests (received long after it occurred)."""
    return parse_event_obj(
        {
            "event_id": event_id,
            "event_type": event_type,
            "schema_version": 1,
            "agency_id": "demo-agency",
            "child_id": child,
            "occurred_at": occurred_at.isoformat(),
            "jurisdiction": {"state": state, **({"county": county} if county else {})},
            "payload": payload,
        },
        now=datetime(2030, 1, 1, tzinfo=UTC),
    )


def missing_opened(
    *, child_id: str | None = None, episode_id: str = "E-1", at: datetime | None = None, **kw: Any
) -> dict[str, Any]:
    when = at or datetime.now(UTC)
    payload = {
        "episode_id": episode_id,
        "last_seen_at": ts(when - timedelta(minutes=30)),
        "circumstances": "runaway",
        **kw,
    }
    return make_event("missing.opened", payload, child_id=child_id, occurred_at=when)


@contextlib.contextmanager
def temp_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="carealert-test-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def certificate_authority(directory: Path) -> tuple[Path, Path]:
    """A throw-away CA and a broker certificate it signs for 127.0.0.1, made now with openssl:
    (the CA certificate, the broker's PEM keystore: PKCS#8 key, certificate, CA)."""

    def openssl(*args: str) -> None:
        tool = ensure_debian_tool("openssl", "openssl")
        subprocess.run([tool, *args], check=True, capture_output=True, timeout=60)

    ca_key, ca = directory / "ca.key", directory / "ca.pem"
    key, csr, cert = directory / "broker.key", directory / "broker.csr", directory / "broker.pem"
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(ca_key))
    openssl(
        "req",
        "-x509",
        "-new",
        "-key",
        str(ca_key),
        "-days",
        "2",
        "-subj",
        "/CN=carealert test CA",
        "-out",
        str(ca),
    )
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(key))
    openssl("req", "-new", "-key", str(key), "-subj", "/CN=127.0.0.1", "-out", str(csr))
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        str(ext),
        "-out",
        str(cert),
    )
    keystore = directory / "broker-keystore.pem"
    keystore.write_text(key.read_text() + cert.read_text() + ca.read_text())
    return ca, keystore


def trusting(cert: Path) -> ssl.SSLContext:
    """A client TLS context that trusts `cert` (and nothing else)."""
    return ssl.create_default_context(cafile=str(cert))


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """(certificate, key) for 127.0.0.1, made now with openssl; the certificate is its own CA."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            ensure_debian_tool("openssl", "openssl"),
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def ensure_debian_tool(binary: str, package: str) -> str:
    """Path of `binary`, installing the Debian `package` if it is missing (tests run as root on
    our machines and CI; nothing is installed by hand)."""
    import shutil

    found = shutil.which(binary)
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package]
    if subprocess.run(install, env=env, capture_output=True, timeout=600).returncode != 0:
        subprocess.run(
            ["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600, check=True
        )
        subprocess.run(install, env=env, capture_output=True, timeout=600, check=True)
    found = shutil.which(binary)
    if not found:
        raise RuntimeError(f"{package} installed but {binary} is not on PATH")
    return found


def make_escalation(**kw: Any) -> Escalation:
    """A valid firing escalation for demo-agency; `kw` overrides any field."""
    now = datetime.now(UTC)
    base: dict[str, Any] = {
        "escalation_id": uuid.uuid4().hex,
        "status": "firing",
        "rule_id": "federal.report-ncmec",
        "policy_version": "test",
        "severity": "high",
        "action": "Report the missing child to NCMEC",
        "basis": "42 USC 671(a)(35)(B)",
        "agency_id": "demo-agency",
        "child_id": f"C-{uuid.uuid4().hex[:6]}",
        "episode_id": "E-1",
        "jurisdiction": {"state": "MO"},
        "recipients": ["caseworker"],
        "due_at": now + timedelta(hours=2),
        "evidence": {"age": 15},
        "triggered_by": ["ev-1"],
        "created_at": now,
        "caseworker_id": "W-1",
        "supervisor_id": "S-1",
        "subject": {
            "name": "Jane Doe",
            "clothing": "red hoodie",
            "immediate_risks": ["medical_need"],
        },
    }
    base.update(kw)
    return Escalation.model_validate(base)


@contextlib.contextmanager
def kafka_bootstrap() -> Iterator[str]:
    """KAFKA_BOOTSTRAP_SERVERS if set, else a throw-away broker, removed at the end."""
    existing = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if existing:
        yield existing
        return
    broker = Broker()
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.destroy()


def _pg_bin() -> Path:
    """Debian's PostgreSQL binaries (the newest major version), installed if missing without the
    cluster Debian's package would otherwise create and start on 5432."""

    def found() -> list[Path]:
        paths = (Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        return sorted(paths, key=lambda p: int(p.parts[-3].split(".")[0]))

    if not found():
        config = Path("/etc/postgresql-common/createcluster.d")
        config.mkdir(parents=True, exist_ok=True)
        (config / "carealert-tests.conf").write_text("create_main_cluster = false\n")
        ensure_debian_tool("pg_ctlcluster", "postgresql")
    if not found():
        raise RuntimeError("Debian's postgresql package installed no initdb")
    return found()[-1].parent


class Postgres:
    """A throw-away PostgreSQL cluster on a free loopback port, trust authentication, run by the
    `postgres` system user when this runs as root (PostgreSQL refuses root). `durable=False`
    (tests): no fsync, stopped at once; True (benches): as a server runs."""

    def __init__(self, durable: bool = False) -> None:
        self.bin = _pg_bin()
        self.durable = durable
        self.home = Path(tempfile.mkdtemp(prefix="carealert-pg-"))
        self.data = self.home / "data"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.home, "postgres", "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run(
            [*self.as_user, str(self.bin / tool), *args], capture_output=True, timeout=120
        )
        if done.returncode != 0:
            log = self.home / "log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            stderr = done.stderr.decode(errors="replace")[-2000:]
            raise RuntimeError(f"{tool} failed: {stderr}\n{tail}")

    def start(self) -> None:
        fast = () if self.durable else ("--no-sync",)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", *fast)
        options = f"-k {self.home} -p {self.port} -c listen_addresses=127.0.0.1"
        if not self.durable:
            options += " -c fsync=off"
        log = str(self.home / "log")
        self._run("pg_ctl", "start", "-w", "-D", str(self.data), "-l", log, "-o", options)

    def database(self, name: str) -> str:
        """A new empty database: its SQLAlchemy URL."""
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def destroy(self) -> None:
        mode = "fast" if self.durable else "immediate"
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            if self.data.exists():
                self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode)
        shutil.rmtree(self.home, ignore_errors=True)


@contextlib.contextmanager
def postgres(durable: bool = False) -> Iterator[Postgres]:
    """A started throw-away cluster (Postgres), removed at the end."""
    server = Postgres(durable)
    try:
        server.start()
        yield server
    finally:
        server.destroy()
