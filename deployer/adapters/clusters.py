"""Cluster credentials per provider: a private kubeconfig for one member, checked, then removed.

`access(ws, member)` yields a ClusterAccess whose `env` (ws.env plus KUBECONFIG) is what helm
and kubectl get. Credentials come from the member's provider:

- `kubeconfig`: the sops-encrypted kubeconfig, decrypted in memory into a 0600 file;
- `gke`: `gcloud container clusters get-credentials`, writing into that private file; with
  `cluster.credentials` (a sops-encrypted service-account key, for CI without a gcloud login)
  the key is decrypted into a 0600 file only for `gcloud auth activate-service-account`
  (the file removed right after, also when gcloud fails); the credential gcloud stores stays
  in a private CLOUDSDK_CONFIG inside the private directory, which goes to helm/kubectl in
  `env` for the gke-gcloud-auth-plugin;
- `eks`: `aws eks update-kubeconfig --kubeconfig <private file>`;
- `aks`: `az aks get-credentials --file <private file>`, then `kubelogin convert-kubeconfig
  -l azurecli` when the cluster uses Azure AD; with `cluster.credentials` (a sops-encrypted
  service principal) `az login --service-principal` runs first in a private AZURE_CONFIG_DIR,
  the secret handed over as a 0600 file (`--password=@FILE`, az's own file syntax; never in
  argv), and that config dir goes to helm/kubectl in `env` for kubelogin;
- or the operator's own file (`deploy --kubeconfig PATH`), used as is.

Every temporary file lives in a private 0700 directory removed on exit, also on error. A
process killed outright (SIGKILL, the machine going down) cannot remove it, so each directory
holds an `owner` file (the process id) that its process keeps flock-ed while it lives: the
kernel drops that lock when the process dies, however it dies, and the next `access()`
removes this user's `deployer-*` directories whose owner lock nobody holds.
Before anything talks to the cluster, the client certificate of the user that the selected
context uses is checked: expired is a DeployError, expiring within 30 days a warning.
os.environ is never read or changed: several members can be handled at once.
"""
from __future__ import annotations

import base64
import datetime
import fcntl
import math
import os
import shutil
import stat
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

from deployer.adapters import process, sops as secrets
from deployer.console import Console
from deployer.errors import ConfigError, DeployError, ToolError
from deployer.model.federation import Member
from deployer.model.workspace import Workspace

WARN_DAYS = 30
TOOL_TIMEOUT = 300  # seconds for gcloud / aws to write credentials
KUBECONFIG_NAME = "kubeconfig"
OWNER_NAME = "owner"  # in each private directory: its process id, flock-ed while it lives
# What gcloud and aws find in the private file before they add their cluster: an empty config.
_EMPTY_KUBECONFIG = ("apiVersion: v1\nkind: Config\npreferences: {}\nclusters: []\n"
                     "contexts: []\nusers: []\ncurrent-context: \"\"\n")
_K3S_RENEW = ("k3s: run `k3s certificate rotate` on a server node and restart k3s, then take the "
              "new client certificate from /etc/rancher/k3s/k3s.yaml")


@dataclass(frozen=True)
class ClusterAccess:
    """Credentials for one member's cluster, valid inside the `access()` block only."""

    member: str
    kubeconfig: Path          # a private 0600 kubeconfig file (or the operator's own file)
    env: dict[str, str]       # ws.env plus KUBECONFIG=<kubeconfig>, for helm/kubectl
    context: str | None       # the kubeconfig context to use (None: current-context)
    source: str               # where the credentials came from, for messages
    cert_expiry: datetime.datetime | None   # earliest client-certificate expiry (UTC), if any
    _private_dir: Path | None = field(default=None, repr=False, compare=False)
    _console: Console | None = field(default=None, repr=False, compare=False)

    def kube(self):
        """A Kube adapter for this cluster (usable inside the access block; close it).

        Certificate and key data the client must write to files go into the private
        directory, so they are removed with it; the kubeconfig itself is never rewritten.
        """
        from deployer.adapters.kube import Kube

        scratch = self._private_dir
        if scratch is not None and not scratch.is_dir():
            raise DeployError(f"cluster access for member {self.member} is closed",
                              file=self.source,
                              hint="call kube() inside the `with access(...)` block")
        try:
            return Kube.from_kubeconfig(self.kubeconfig, context=self.context, scratch=scratch,
                                        source=self.source, env=self.env,
                                        console=self._console)
        except DeployError as exc:
            raise DeployError(f"cannot use the kubeconfig of member {self.member}: "
                              f"{exc.message.removeprefix('cannot use the kubeconfig: ')}",
                              file=self.source) from None


@contextmanager
def access(ws: Workspace, member: Member, *, kubeconfig: Path | None = None,
           now: datetime.datetime | None = None) -> Iterator[ClusterAccess]:
    """Credentials for `member`'s cluster: a checked kubeconfig and an env to hand to tools."""
    now = _utc(now or datetime.datetime.now(datetime.timezone.utc))
    remove_leftovers()
    private = Path(tempfile.mkdtemp(prefix=f"deployer-{member.name}-"))
    owner: int | None = None
    try:
        os.chmod(private, 0o700)
        owner = _claim(private)
        context: str | None = None
        extra: dict[str, str] = {}  # a private cloud-CLI config dir, for the exec plugins
        if kubeconfig is not None:
            path = Path(kubeconfig).absolute()
            source = str(kubeconfig)
            if not path.is_file():
                raise DeployError(f"kubeconfig for member {member.name} not found",
                                  file=source, hint="pass an existing file to --kubeconfig")
        else:
            path = private / KUBECONFIG_NAME
            provider = member.cluster.provider
            if provider == "kubeconfig":
                source = _from_secrets(ws, member, path)
                context = member.cluster.context
            elif provider == "gke":
                source, extra = _from_gcloud(ws, member, path, private)
            elif provider == "eks":
                source = _from_aws(ws, member, path)
            elif provider == "aks":
                source, extra = _from_azure(ws, member, path, private)
            else:
                raise ConfigError(f"member {member.name}: unknown cluster provider {provider!r}",
                                  file="config/federation.yaml",
                                  key=f"members.{member.name}.cluster.provider")
        expiry = check_certificates(path, member, context, source, now, ws.console,
                                    renew_hint=_renew_hint(member, kubeconfig, source))
        env = {**ws.env, **extra, "KUBECONFIG": str(path)}
        yield ClusterAccess(member=member.name, kubeconfig=path, env=env, context=context,
                            source=source, cert_expiry=expiry, _private_dir=private,
                            _console=ws.console)
    finally:
        shutil.rmtree(private, ignore_errors=True)
        if owner is not None:
            os.close(owner)


def remove_leftovers(tmp: Path | None = None) -> list[Path]:
    """Remove the private directories that processes killed outright left in `tmp` (default:
    the temp dir): this user's `deployer-*` directories whose `owner` file nobody holds
    locked. A live process's directory (its lock held), one being created (no owner file
    yet) and other users' files are left alone. Returns what was removed."""
    root = Path(tmp or tempfile.gettempdir())
    try:
        entries = list(os.scandir(root))
    except OSError:
        return []
    removed = []
    for entry in entries:
        if not entry.name.startswith("deployer-"):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
            continue
        try:
            fd = os.open(os.path.join(entry.path, OWNER_NAME), os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # its process is alive
        else:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
        finally:
            os.close(fd)
    return removed


def _claim(private: Path) -> int:
    """Mark `private` as this process's for as long as it lives: an `owner` file with the
    process id, locked (flock) before it gets its name, so no other process ever finds it
    unlocked while this one runs. The open descriptor holds the lock; close it when done."""
    pending = private / f".{OWNER_NAME}"
    fd = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.rename(pending, private / OWNER_NAME)
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_certificates(path: Path, member: Member, context: str | None, source: str,
                       now: datetime.datetime, console: Console, *,
                       renew_hint: str = "renew it") -> datetime.datetime | None:
    """Earliest client-certificate expiry of the user `context` uses; raise if expired, warn if soon.

    Only the user of the selected context (current-context when `context` is None) is
    checked: that is the one helm and kubectl will authenticate as.
    """
    now = _utc(now)
    config = _load_kubeconfig(path, source)
    user = _context_user(config, context, source)
    if user is None:
        return None
    _register_secrets(user, console)
    certs = _client_certificates(user, path.parent, member, source)
    if not certs:
        return None
    expiry = min(cert.not_valid_after_utc for cert in certs)
    day = expiry.date().isoformat()
    if expiry <= now:
        raise DeployError(f"client certificate for member {member.name} expired on {day}",
                          file=source, hint=renew_hint)
    left = expiry - now
    if left <= datetime.timedelta(days=WARN_DAYS):
        days = math.ceil(left.total_seconds() / 86400)
        console.warn(f"client certificate for member {member.name} expires on {day} "
                    f"({days} day{'' if days == 1 else 's'})")
    return expiry


# --- credential sources ---------------------------------------------------------------------

def _from_secrets(ws: Workspace, member: Member, path: Path) -> str:
    """Decrypt the member's kubeconfig (in memory) into the private 0600 file."""
    rel = member.cluster.kubeconfig
    if not rel:
        raise ConfigError(f"member {member.name} has provider kubeconfig but no kubeconfig file",
                          file="config/federation.yaml",
                          key=f"members.{member.name}.cluster.kubeconfig")
    _write_private(path, secrets.decrypt(ws.root, rel, ws.env))
    return rel


def _from_gcloud(ws: Workspace, member: Member, path: Path,
                 private: Path) -> tuple[str, dict[str, str]]:
    """`gcloud container clusters get-credentials` into the private file; with a
    service-account key from sops, activated first in a private gcloud config."""
    cluster = member.cluster
    where = f"{cluster.project}/{cluster.zone}/{cluster.name}"
    binary = _which("gcloud", ws.env)
    if binary is None:
        raise ToolError(f"gcloud not found: member {member.name} is on GKE ({where})",
                        hint="install the Google Cloud CLI with the gke-gcloud-auth-plugin, "
                             "or pass --kubeconfig PATH")
    extra: dict[str, str] = {}
    if cluster.credentials:
        extra["CLOUDSDK_CONFIG"] = str(_private_dir(private / "gcloud"))
        key = _service_account_key(ws, member)
        with _secret_file(private / "gcloud-key.json", key["text"]) as key_file:
            _run_tool([binary, "auth", "activate-service-account", key["client_email"],
                       "--key-file", str(key_file)],
                      {**ws.env, **extra}, None, member, ws.console,
                      hint=f"check the service account in {cluster.credentials} is enabled "
                           "and its key not revoked")
    argv = [binary, "container", "clusters", "get-credentials", str(cluster.name),
            "--zone", str(cluster.zone), "--project", str(cluster.project)]
    env = {**ws.env, **extra, "KUBECONFIG": str(path), "USE_GKE_GCLOUD_AUTH_PLUGIN": "True"}
    who = (f"the service account in {cluster.credentials}" if cluster.credentials
           else "`gcloud auth list`")
    _run_tool(argv, env, path, member, ws.console,
              hint=f"check {who} has access to project {cluster.project}, "
                   f"or pass --kubeconfig PATH")
    return f"gke:{where}", extra


def _from_aws(ws: Workspace, member: Member, path: Path) -> str:
    """`aws eks update-kubeconfig --kubeconfig <private file>`."""
    cluster = member.cluster
    where = f"{cluster.region}/{cluster.name}"
    binary = _which("aws", ws.env)
    if binary is None:
        raise ToolError(f"aws not found: member {member.name} is on EKS ({where})",
                        hint="install the AWS CLI v2 with credentials for the cluster's account, "
                             "or pass --kubeconfig PATH")
    argv = [binary, "eks", "update-kubeconfig", "--name", str(cluster.name),
            "--region", str(cluster.region), "--kubeconfig", str(path)]
    env = {**ws.env, "KUBECONFIG": str(path)}
    _run_tool(argv, env, path, member, ws.console,
              hint="check the AWS credentials (`aws sts get-caller-identity`) can describe "
                   "the cluster, or pass --kubeconfig PATH")
    return f"eks:{where}"


def _from_azure(ws: Workspace, member: Member, path: Path,
                private: Path) -> tuple[str, dict[str, str]]:
    """`az aks get-credentials --file <private file>` (after `az login --service-principal`
    in a private config when the member has credentials), then kubelogin for Azure AD."""
    cluster = member.cluster
    where = f"{cluster.subscription}/{cluster.resource_group}/{cluster.name}"
    binary = _which("az", ws.env)
    if binary is None:
        raise ToolError(f"az not found: member {member.name} is on AKS ({where})",
                        hint="install the Azure CLI and kubelogin, or pass --kubeconfig PATH")
    extra: dict[str, str] = {}
    if cluster.credentials:
        extra["AZURE_CONFIG_DIR"] = str(_private_dir(private / "azure"))
        principal = _service_principal(ws, member)
        secret_kind, secret = principal["secret"]
        name = "sp-cert.pem" if secret_kind == "certificate" else "sp-secret"
        with _secret_file(private / name, secret) as secret_file:
            flag = (["--certificate", str(secret_file)] if secret_kind == "certificate"
                    else [f"--password=@{secret_file}"])
            _run_tool([binary, "login", "--service-principal", "--username",
                       principal["client_id"], "--tenant", principal["tenant"], *flag,
                       "--allow-no-subscriptions", "--output", "none"],
                      {**ws.env, **extra}, None, member, ws.console,
                      hint=f"check the service principal in {cluster.credentials} (tenant, "
                           "client_id and its secret or certificate)")
    env = {**ws.env, **extra, "KUBECONFIG": str(path)}
    _run_tool([binary, "aks", "get-credentials", "--subscription", str(cluster.subscription),
               "--resource-group", str(cluster.resource_group), "--name", str(cluster.name),
               "--file", str(path), "--overwrite-existing", "--output", "none"],
              env, path, member, ws.console,
              hint=("check the service principal in " + cluster.credentials if
                    cluster.credentials else "check `az account show`") +
                   f" can read cluster {cluster.name}, or pass --kubeconfig PATH")
    if "kubelogin" in path.read_text(encoding="utf-8", errors="replace"):
        kubelogin = _which("kubelogin", ws.env)
        if kubelogin is None:
            raise ToolError(f"kubelogin not found: member {member.name}'s AKS cluster uses "
                            "Azure AD", hint="install kubelogin (Azure/kubelogin), or pass "
                                             "--kubeconfig PATH")
        _run_tool([kubelogin, "convert-kubeconfig", "--login", "azurecli",
                   "--kubeconfig", str(path)], env, None, member, ws.console,
                  hint="check kubelogin can read the kubeconfig az wrote")
        os.chmod(path, 0o600)
    return f"aks:{where}", extra


def _service_account_key(ws: Workspace, member: Member) -> dict:
    """The decrypted GKE service-account key: its text and client_email (text masked from now
    on in every printed line)."""
    import json

    rel = str(member.cluster.credentials)
    text = secrets.decrypt(ws.root, rel, ws.env)
    try:
        data = json.loads(text)
    except ValueError:
        data = _load_secret_map(text, rel)
    if not isinstance(data, dict):
        raise ConfigError("expected a service-account key (a JSON object)", file=rel)
    _mask_all(ws.console, {k: data.get(k) for k in ("private_key", "private_key_id")})
    for key in ("type", "client_email", "private_key"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise ConfigError(f"service-account key has no {key!r} (expected the JSON key "
                              "file `gcloud iam service-accounts keys create` writes)",
                              file=rel, key=key)
    if data["type"] != "service_account":
        raise ConfigError(f"type is {data['type']!r}, expected 'service_account'", file=rel,
                          key="type")
    return {"text": json.dumps(data), "client_email": data["client_email"]}


def _service_principal(ws: Workspace, member: Member) -> dict:
    """The decrypted AKS service principal: tenant, client_id and ("client_secret"|
    "certificate", value); its secret masked from now on in every printed line."""
    rel = str(member.cluster.credentials)
    data = _load_secret_map(secrets.decrypt(ws.root, rel, ws.env), rel)
    _mask_all(ws.console, {k: v for k, v in data.items() if k in ("client_secret",
                                                                     "certificate")})
    for key in ("tenant", "client_id"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise ConfigError(f"service principal has no {key!r} (expected tenant, client_id "
                              "and client_secret or certificate)", file=rel, key=key)
    kinds = [k for k in ("client_secret", "certificate") if data.get(k)]
    if len(kinds) != 1 or not isinstance(data[kinds[0]], str):
        raise ConfigError("service principal needs exactly one of client_secret or certificate "
                          "(a string)", file=rel, key="client_secret")
    return {"tenant": data["tenant"], "client_id": data["client_id"],
            "secret": (kinds[0], data[kinds[0]])}


def _run_tool(argv: list[str], env: Mapping[str, str], path: Path | None, member: Member,
              console: Console, *, hint: str) -> None:
    """Run a cloud CLI step; one that writes credentials into `path` finds it pre-created
    (an empty config, 0600)."""
    tool = Path(argv[0]).name
    if path is not None:
        _write_private(path, _EMPTY_KUBECONFIG)
    try:
        result = process.run(argv, env=env, timeout=TOOL_TIMEOUT, console=console, check=False,
                             tool=tool)
    except ToolError as exc:
        raise DeployError(f"{exc.message} getting credentials for member {member.name}",
                          hint=hint) from None
    if result.returncode != 0:
        raise DeployError(f"{tool} failed getting credentials for member {member.name} "
                          f"(exit {result.returncode}): "
                          f"{console.redact(_last_line(result.stderr))}", hint=hint)
    if path is not None and path.is_file():
        os.chmod(path, 0o600)  # in case the tool replaced the file


# --- kubeconfig inspection -------------------------------------------------------------------

def _load_kubeconfig(path: Path, source: str) -> dict:
    """The kubeconfig as plain data; not YAML or not a map is a DeployError naming `source`."""
    from deployer.model.yamlio import load_text

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DeployError(f"cannot read kubeconfig: {getattr(exc, 'strerror', None) or exc}",
                          file=source) from None
    try:
        data = load_text(text, source).data
    except ConfigError as exc:
        raise DeployError(f"not a valid kubeconfig: {exc.message}", file=source,
                          line=exc.line, hint=exc.hint) from None
    if not isinstance(data, dict):
        raise DeployError("not a valid kubeconfig: expected a map with clusters, contexts and "
                          "users", file=source)
    return data


def _context_user(config: dict, context: str | None, source: str) -> dict | None:
    """The `user` map of the selected context's user (None: the context names no user)."""
    name = context or config.get("current-context")
    contexts = _named(config, "contexts", source)
    if not name:
        raise DeployError("kubeconfig has no current-context and no context was chosen",
                          file=source, hint="set cluster.context for the member in "
                                            "config/federation.yaml, or current-context in the file")
    if name not in contexts:
        known = ", ".join(contexts) or "none"
        raise DeployError(f"kubeconfig has no context {name!r} (contexts: {known})", file=source)
    entry = contexts[name].get("context") or {}
    cluster = entry.get("cluster")
    if cluster and cluster not in _named(config, "clusters", source):
        raise DeployError(f"context {name!r} uses cluster {cluster!r}, which the kubeconfig "
                          f"does not define", file=source)
    user = entry.get("user")
    if not user:
        return None
    users = _named(config, "users", source)
    if user not in users:
        raise DeployError(f"context {name!r} uses user {user!r}, which the kubeconfig does "
                          f"not define", file=source)
    return users[user].get("user") or {}


def _named(config: dict, key: str, source: str) -> dict[str, dict]:
    """A kubeconfig list (`contexts`, `users`, `clusters`) as {name: entry}."""
    entries = config.get(key) or []
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise DeployError(f"not a valid kubeconfig: {key} must be a list of maps", file=source)
    return {str(e.get("name")): e for e in entries if e.get("name") is not None}


def _client_certificates(user: dict, base: Path, member: Member, source: str) -> list:
    """The certificates in the user's client-certificate(-data); [] when it has none."""
    from cryptography import x509

    if user.get("client-certificate-data"):
        what = "client-certificate-data"
        try:
            blob = base64.b64decode(str(user["client-certificate-data"]), validate=False)
        except ValueError:
            raise DeployError(f"member {member.name}: {what} is not base64", file=source) from None
    elif user.get("client-certificate"):
        cert_path = Path(os.path.expanduser(str(user["client-certificate"])))
        cert_path = cert_path if cert_path.is_absolute() else base / cert_path
        what = f"client-certificate {cert_path}"
        try:
            blob = cert_path.read_bytes()
        except OSError as exc:
            raise DeployError(f"member {member.name}: cannot read {what}: {exc.strerror}",
                              file=source) from None
    else:
        return []
    try:
        return x509.load_pem_x509_certificates(blob)
    except ValueError:
        try:
            return [x509.load_der_x509_certificate(blob)]
        except ValueError:
            raise DeployError(f"member {member.name}: {what} is not a PEM or DER certificate",
                              file=source) from None


def _register_secrets(user: dict, console: Console) -> None:
    """Mask the user's credentials in every printed line from now on."""
    console.add_secrets(user[k] for k in ("token", "password", "client-key-data")
                        if isinstance(user.get(k), str))


# --- small helpers ---------------------------------------------------------------------------

@contextmanager
def _secret_file(path: Path, text: str) -> Iterator[Path]:
    """`text` in a new 0600 file for one command, removed afterwards (also on error)."""
    try:
        _write_private(path, text)
        yield path
    finally:
        path.unlink(missing_ok=True)


def _private_dir(path: Path) -> Path:
    """A new 0700 directory (a cloud CLI's private config)."""
    path.mkdir(mode=0o700)
    os.chmod(path, 0o700)
    return path


def _load_secret_map(text: str, rel: str) -> dict:
    """A decrypted credentials file as a map (YAML or JSON)."""
    from deployer.model.yamlio import load_text

    data = load_text(text, rel).data
    if not isinstance(data, dict):
        raise ConfigError("expected a map of credentials", file=rel)
    return {k: v for k, v in data.items() if k != "sops"}


def _mask_all(console: Console, data: dict) -> None:
    """These decrypted credentials are masked in every printed line from now on (a multi-line
    private key line by line too)."""
    console.add_secrets(v for v in data.values() if isinstance(v, str) and v)


def _write_private(path: Path, text: str) -> None:
    """Write `text` to a new 0600 file (O_EXCL: never through an existing file or link)."""
    if path.exists():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def _which(name: str, env: Mapping[str, str]) -> str | None:
    """`name` on the PATH of the child environment (never os.environ's)."""
    return shutil.which(name, path=env.get("PATH", os.defpath))


def _renew_hint(member: Member, operator_file: Path | None, source: str) -> str:
    """What to do about an expired client certificate, by where the kubeconfig came from."""
    if operator_file is not None:
        return f"renew it ({_K3S_RENEW}) and update {source}"
    if member.cluster.provider == "kubeconfig":
        return (f"renew it ({_K3S_RENEW}) and re-encrypt the kubeconfig with "
                f"./deploy.py secrets edit {source}")
    return ("the credentials the cloud CLI wrote carry an expired client certificate; switch the "
            "cluster to exec/IAM authentication, or pass --kubeconfig PATH")


def _utc(moment: datetime.datetime) -> datetime.datetime:
    """`moment` as an aware UTC datetime (naive values are taken as UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc)


def _last_line(text: str) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"
