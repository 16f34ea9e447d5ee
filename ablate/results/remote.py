"""Object stores as the user names them and as they answer: a storage URI's text checked before it
is opened, the endpoint taken from the environment, and a store's errors as one line.

The text of a URI (:func:`check_uri`) is refused, with the character and the fix, wherever readers
would not agree on the folder it names. pyarrow decodes ``%`` escapes in a URI's path (``odd%20dir``
is the folder ``odd dir``) while polars, DuckDB, s3fs and the AWS CLI take ``%20`` as three
characters of the key, so a bucket prefix with ``%`` in it would put the results where half of the
readers of the printed URI never look; a ``*`` is a wildcard to the readers that expand globs
(polars, DuckDB). The other characters a URI holds as they are (letters, digits and
``- _ . ~ ! $ & ' ( ) + , ; = : @``) mean the same key to all of them and round-trip exactly.
"""

from __future__ import annotations

import os
import re
from urllib.parse import parse_qsl, unquote, urlsplit

from ablate.errors import UserError

BUCKET_SCHEMES = ("s3", "gs", "gcs")  # URIs whose netloc is a bucket
BUCKET_STORES = ("s3", "gcs")  # pyarrow filesystems (type_name) whose first path component is a bucket
# What pyarrow's s3:// URIs take in their query (named in the message that refuses another).
S3_OPTIONS = (
    "endpoint_override",
    "scheme",
    "region",
    "allow_bucket_creation",
    "allow_bucket_deletion",
    "tls_ca_file_path",
    "tls_verify_certificates",
)
ENDPOINT_ENV = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")  # the AWS SDKs' order: the S3-specific one wins
UNREACHABLE = ("NETWORK_CONNECTION", "curlCode", "Could not connect", "Could not resolve", "Connection refused")
DENIED = (
    "ACCESS_DENIED",
    "AccessDenied",
    "INVALID_ACCESS_KEY_ID",
    "InvalidAccessKeyId",
    "SIGNATURE_DOES_NOT_MATCH",
    "SignatureDoesNotMatch",
    "EXPIRED_TOKEN",
    "ExpiredToken",
    "InvalidToken",
    "PermissionDenied",
    "Permission denied",
    "Forbidden",
)
NO_BUCKET = ("NO_SUCH_BUCKET", "NoSuchBucket")
CREDENTIALS_FIX = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or a profile in ~/.aws/credentials and AWS_PROFILE) "
    "to a key that may list, read and write there"
)


class StoreError(UserError, OSError):
    """An object store that refuses or does not answer, said in one line: a :class:`UserError` for the
    CLI (exit code 2) and an ``OSError`` for the writers that stop a run cleanly on one. ``denied``:
    the store refused the credentials (or their rights), as opposed to not answering."""

    def __init__(self, message: str, denied: bool = False) -> None:
        super().__init__(message)
        self.denied = denied


# A KEY:SECRET@ or KEY@ after the scheme (an AWS secret key may hold / and +), and option values
# named like secrets: what a message never prints.
CREDENTIALS_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)(?:[^@/:]*:[^@]*|[^@/]*)@")
SECRET_OPTION_RE = re.compile(r"([?&][^=&#]*(?:key|secret|token|password|credential)[^=&#]*=)[^&#]*", re.I)


def shown(text: str) -> str:
    """``text`` as a message may print it: no key or secret from before an ``@``, no secret option's value."""
    return SECRET_OPTION_RE.sub(r"\1***", CREDENTIALS_RE.sub(r"\1", text))


def check_uri(text: str) -> None:
    """Refuse (UserError) a URI whose text names no folder, or another folder than it seems to:
    credentials, no bucket or a port where the bucket goes, ``#``, ``//``, ``.`` or ``..`` in the
    path, ``%`` or ``*`` in a bucket's path (see the module), a query option given twice or empty.
    A message never prints a key or a secret (:func:`shown`)."""
    safe = shown(text)
    scheme = text.split("://", 1)[0].lower()
    if scheme in BUCKET_SCHEMES and CREDENTIALS_RE.match(text):
        raise UserError(
            f"storage {safe.split('?', 1)[0]}: a key or a secret key in the URI (KEY:SECRET@) would be printed "
            f"and stored with the results; {CREDENTIALS_FIX} instead"
        )
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError as e:
        detail = f" ({e})" if safe == text else ""  # its words may quote a secret
        raise UserError(f"storage {safe!r}: not a URI{detail}; give one such as s3://bucket/prefix") from None
    scheme = parts.scheme.lower()
    bucket = scheme in BUCKET_SCHEMES
    if "#" in text:
        fix = "name the folder without #" if bucket else "write %23 for a # in a name"
        raise UserError(f"storage {safe}: a # starts a URI fragment, which is dropped with all after it; {fix}")
    _check_query(safe, parts.query)
    if not bucket:
        return
    netloc = parts.netloc
    where = f"{scheme}://{netloc}{parts.path}"
    if not netloc:
        raise UserError(f"storage {safe}: no bucket; give {scheme}://BUCKET/PREFIX")
    if ":" in netloc:
        fix = "?endpoint_override=HOST:PORT" if scheme == "s3" else "the store's own options"
        raise UserError(
            f"storage {safe}: a port after the bucket {netloc.split(':')[0]!r}; a server's port goes in {fix}"
        )
    names = parts.path.strip("/").split("/") if parts.path.strip("/") else []
    if "//" in parts.path or any(n in (".", "..") for n in names):
        bad = "an empty folder name (//)" if "//" in parts.path else f"a {'.' if '.' in names else '..'} folder"
        raise UserError(
            f"storage {where}: {bad} in the path; object stores keep it as part of the key instead of "
            "resolving it, so write the prefix without it"
        )
    if "%" in parts.path:
        raise UserError(_percent_refusal(scheme, netloc, parts.path))
    if "*" in parts.path:
        raise UserError(
            f"storage {where}: * in the path is a wildcard to the readers that expand globs (polars, DuckDB), "
            f"which would read other folders too; name the prefix with {SAFE_TEXT} only"
        )


URI_SAFE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~!$&'()+,;=:@/")
SAFE_TEXT = "letters, digits and - _ . ~ ! $ & ' ( ) + , ; = : @"


def _percent_refusal(scheme: str, bucket: str, path: str) -> str:
    """Why a ``%`` in a bucket's path is refused, with the path it could be instead."""
    escape = re.search(r"%[0-9A-Fa-f]{2}", path)
    said = (
        f"{escape.group()} in the path is {unquote(escape.group())!r} to pyarrow but three characters to"
        if escape
        else "% in the path is the start of an escape to pyarrow but a character to"
    )
    instead = "".join(c if c in URI_SAFE else "-" for c in unquote(path)).strip("/")
    return (
        f"storage {scheme}://{bucket}{path}: {said} other readers (polars, DuckDB, s3fs, the AWS CLI), which "
        f"would look for the results in another folder; name the prefix with {SAFE_TEXT} only, "
        f"e.g. {scheme}://{bucket}/{instead}"
    )


def _check_query(text: str, query: str) -> None:
    seen: set[str] = set()
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in seen:
            raise UserError(f"storage {text}: the option {key} is given twice; keep one")
        if not value:
            example = {"endpoint_override": "HOST:PORT", "scheme": "http", "region": "us-east-1"}.get(key, "VALUE")
            raise UserError(f"storage {text}: the option {key} has no value; give {key}={example} or leave it out")
        seen.add(key)


def arrow_refusal(text: str, e: Exception) -> UserError:
    """pyarrow's refusal of the URI ``text`` as one line naming what to change."""
    msg = (str(e).splitlines()[0] if str(e) else type(e).__name__).replace(text, shown(text))
    path, text = urlsplit(text).path, shown(text)
    if "Unexpected query parameter" in msg:
        name = msg.rsplit(":", 1)[-1].strip().strip("'")
        scheme = text.split("://", 1)[0]
        options = f"; {scheme}:// URIs take {', '.join(S3_OPTIONS)}" if scheme == "s3" else ""
        if SECRET_OPTION_RE.search(f"?{name}="):
            options += f"; credentials never go in the URI: {CREDENTIALS_FIX}"
        return UserError(f"storage {text}: {name} is not an option of the URI{options}")
    if "syntax error at character" in msg:
        odd = [c for c in path if c not in URI_SAFE and c != "%"]
        char = repr(odd[0]) if odd else msg.split("syntax error at character ", 1)[1].split(" (position", 1)[0]
        local = text.lower().startswith("file:")
        fix = "give it as a plain path instead" if local else f"name the folder with {SAFE_TEXT} only"
        return UserError(f"storage {text}: the character {char} cannot be in a URI; {fix}")
    if "connection scheme" in msg:
        return UserError(f"storage {text}: {msg}; the scheme option is http or https")
    if "not a valid boolean" in msg:
        return UserError(f"storage {text}: {msg.rstrip('.')}; give true or false")
    return UserError(
        f"storage {text!r} is not a filesystem URI pyarrow can open ({msg}); give a path or a URI "
        "such as s3://bucket/prefix"
    )


def with_endpoint(text: str) -> str:
    """An ``s3://`` URI with the endpoint of ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` in its query
    when it names none (``endpoint_override=HOST:PORT&scheme=http``): the processes of a run on other
    nodes get it from the URI, whatever their environment."""
    parts = urlsplit(text)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    env, url = next(((k, os.environ[k]) for k in ENDPOINT_ENV if os.environ.get(k)), (None, ""))
    if parts.scheme != "s3" or "endpoint_override" in query or not env:
        return text
    endpoint = urlsplit(url if "://" in url else f"https://{url}")
    if not endpoint.netloc or endpoint.scheme not in ("http", "https") or endpoint.path.strip("/") or endpoint.query:
        # a path or query after HOST:PORT would be dropped: endpoint_override takes the host and port only
        raise UserError(f"{env}={url!r}: not an endpoint URL; give one such as http://localhost:9000")
    extra = f"endpoint_override={endpoint.netloc}" + ("" if "scheme" in query else f"&scheme={endpoint.scheme}")
    return parts._replace(query=f"{parts.query}&{extra}" if parts.query else extra).geturl()


def reach_hint(where: str) -> str:
    if not where.startswith("s3://"):
        return "check the URI and the network"
    return (
        "check the endpoint: for MinIO, Ceph or another S3-compatible server add "
        "?endpoint_override=HOST:PORT&scheme=http to the URI or set AWS_ENDPOINT_URL=http://HOST:PORT"
    )


def first_line(e: BaseException) -> str:
    """The error's first line without pyarrow's ``When getting information for ...:`` preamble."""
    line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if line.startswith("When ") and ": " in line:
        line = line.split(": ", 1)[1]
    return line[:300]


def store_error(e: OSError, where: str) -> StoreError | None:
    """What the store's error ``e`` at ``where`` (a URI) means for the user, as one line; None for an
    error that is not about reaching or being let into the store (a missing file, a full disk)."""
    if isinstance(e, StoreError):
        return e
    text = str(e)
    if any(mark in text for mark in UNREACHABLE):
        return StoreError(f"storage {where}: cannot reach it ({first_line(e)}); {reach_hint(where)}")
    if any(mark in text for mark in DENIED):
        return StoreError(f"storage {where}: access denied ({first_line(e)}); {CREDENTIALS_FIX}", denied=True)
    if any(mark in text for mark in NO_BUCKET):
        bucket = where.split("://", 1)[-1].split("/", 1)[0].split("?", 1)[0]
        return StoreError(
            f"storage {where}: the bucket {bucket!r} does not exist (any more); create it or give another"
        )
    return None
