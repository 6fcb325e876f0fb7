"""Secrets and look-alikes for the redaction tests.

Every secret here is fake: generated from a fixed seed with the real prefixes, lengths and alphabets,
so the shapes are realistic and nothing in this file (or the repository) is a credential. Each secret is
embedded in the kind of text it turns up in (a log line, a connection string, a KQL result, an error
body) and labelled with the kind the broker must count. The look-alikes are text a broker sees every
day that resembles a secret and must come through unchanged.

``python -m tests.data.secret_corpus`` prints the figures quoted in docs/security.md.
"""

from __future__ import annotations

import base64
import json
import random
import string
import time
from dataclasses import dataclass
from urllib.parse import quote

_rng = random.Random(20261121)
ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"
URL_B64 = ALNUM + "-_"


def _pick(alphabet: str, n: int) -> str:
    return "".join(_rng.choice(alphabet) for _ in range(n))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


# ---------------------------------------------------------------- fake secrets of each shape


def account_key() -> str:
    """An Azure Storage / Cosmos DB account key: 64 random bytes in base64 (88 characters)."""
    return base64.b64encode(_rng.randbytes(64)).decode()


def shared_access_key() -> str:
    """A Service Bus / Event Hubs key: 32 random bytes in base64 (44 characters)."""
    return base64.b64encode(_rng.randbytes(32)).decode()


def sas_sig() -> str:
    """A SAS ``sig``: an HMAC-SHA256 in base64, URL-encoded as it appears in a query string."""
    return quote(base64.b64encode(_rng.randbytes(32)).decode(), safe="")


def github(prefix: str = "ghp_") -> str:
    return prefix + _pick(ALNUM, 36)


def github_pat() -> str:
    return "github_pat_" + _pick(ALNUM, 22) + "_" + _pick(ALNUM, 59)


def jwt(audience: str = "https://management.azure.com") -> str:
    tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    header = {"typ": "JWT", "alg": "RS256", "kid": _pick(URL_B64, 27)}
    payload = {
        "aud": audience,
        "iss": f"https://sts.windows.net/{tenant}/",
        "iat": 1795000000,
        "exp": 1795003600,
        "oid": "0c3f2a1e-5b7d-4e9a-8f6c-2d1b0a9e8c7f",
        "tid": tenant,
        "uti": _pick(URL_B64, 22),
    }
    return ".".join(
        (
            _b64url(json.dumps(header).encode()),
            _b64url(json.dumps(payload).encode()),
            _b64url(_rng.randbytes(256)),
        )
    )


def aws_key_id(prefix: str = "AKIA") -> str:
    return prefix + _pick(string.ascii_uppercase + "234567", 16)


def aws_secret() -> str:
    return _pick(B64, 40)


def azure_client_secret() -> str:
    """An Entra application client secret: 3 characters, ``8Q~``, 34 more."""
    return _pick(ALNUM, 3) + "8Q~" + _pick(ALNUM + "_~.-", 34)


def google_api_key() -> str:
    return "AIza" + _pick(URL_B64, 35)


def slack_token(prefix: str = "xoxb") -> str:
    return f"{prefix}-{_pick(string.digits, 12)}-{_pick(string.digits, 13)}-{_pick(ALNUM, 24)}"


def slack_webhook_path() -> str:
    upper = string.ascii_uppercase + string.digits
    return f"T{_pick(upper, 8)}/B{_pick(upper, 10)}/{_pick(ALNUM, 24)}"


def pem_body() -> str:
    raw = base64.b64encode(_rng.randbytes(600)).decode()
    return "\n".join(raw[i : i + 64] for i in range(0, len(raw), 64))


def pem_header(label: str) -> str:
    # Built, never written out whole, so no committed line looks like the start of a real key.
    return f"-----BEGIN {label}-----"


def pem(label: str = "RSA PRIVATE KEY") -> str:
    return f"{pem_header(label)}\n{pem_body()}\n-----END {label}-----"


def password() -> str:
    return _pick(string.ascii_letters, 5) + _pick(string.digits, 3) + _rng.choice("!#%*+-") + _pick(ALNUM, 5)


def stripe_key() -> str:
    return "sk_live_" + _pick(ALNUM, 24)


def npm_token() -> str:
    return "npm_" + _pick(ALNUM, 36)


def basic(user: str = "svc-deploy") -> str:
    return base64.b64encode(f"{user}:{password()}".encode()).decode()


def hex_digits(n: int) -> str:
    return _pick("0123456789abcdef", n)


# ---------------------------------------------------------------- the corpus


@dataclass(frozen=True)
class Secret:
    """A secret ``value`` embedded in ``text``; redaction must remove it and count ``kind``. ``keep`` are
    parts of the text a person still needs (key names, hosts) that must survive."""

    kind: str
    text: str
    value: str
    keep: tuple[str, ...] = ()


def _case(kind: str, template: str, value: str, *keep: str) -> Secret:
    return Secret(kind, template.replace("{s}", value), value, keep)


def _secrets() -> list[Secret]:
    key, sak, sig = account_key(), shared_access_key(), sas_sig()
    return [
        # ---- Azure Storage and Service Bus connection strings, SAS
        _case(
            "account_key",
            "DefaultEndpointsProtocol=https;AccountName=contosoprodlogs;AccountKey={s};"
            "EndpointSuffix=core.windows.net",
            key,
            "AccountName=contosoprodlogs",
            "AccountKey=",
        ),
        _case(
            "account_key",
            'app setting AzureWebJobsStorage = "DefaultEndpointsProtocol=https;AccountName=stfunc01;'
            'accountkey={s}"',
            account_key(),
            "AccountName=stfunc01",
        ),
        _case(
            "account_key",
            "Endpoint=sb://sb-contoso-prod.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;"
            "SharedAccessKey={s}",
            sak,
            "sb-contoso-prod.servicebus.windows.net",
            "SharedAccessKeyName=RootManageSharedAccessKey",
        ),
        _case(
            "account_key",
            'az storage account keys list output: [{"keyName": "key1", "permissions": "FULL", "value": "x"}, '
            '{"key1": "{s}"}]',
            account_key(),
        ),
        _case("account_key", "COSMOS_PRIMARY_KEY={s}", account_key(), "COSMOS_PRIMARY_KEY="),
        _case(
            "account_key",
            'cosmos: {"documentEndpoint": "https://cosmos-orders.documents.azure.com:443/", '
            '"primaryMasterKey": "{s}"}',
            account_key(),
            "cosmos-orders.documents.azure.com",
        ),
        _case(
            "sas_token",
            "BlobEndpoint=https://contosoprodlogs.blob.core.windows.net/;SharedAccessSignature="
            "sv=2022-11-02&ss=b&srt=co&sp=rl&se=2026-12-01T00:00:00Z&sig={s}",
            sig,
            "BlobEndpoint=https://contosoprodlogs.blob.core.windows.net/",
        ),
        _case(
            "sas_signature",
            "Export written to https://contosoprodlogs.blob.core.windows.net/exports/run-42.csv?"
            "sv=2022-11-02&ss=b&srt=o&sp=r&se=2026-12-01T00:00:00Z&st=2026-11-20T00:00:00Z&spr=https&sig={s}",
            sas_sig(),
            "https://contosoprodlogs.blob.core.windows.net/exports/run-42.csv?sv=2022-11-02",
        ),
        _case(
            "sas_signature",
            "curl 'https://stdiag.queue.core.windows.net/errors/messages?sig={s}&se=2026-12-01&sp=p&sv=2021-08-06'",
            sas_sig(),
            "se=2026-12-01",
        ),
        _case(
            "sas_signature",
            "Authorization: SharedAccessSignature sr=sb%3a%2f%2fsb-contoso.servicebus.windows.net%2forders&"
            "sig={s}&se=1795003600&skn=send",
            sas_sig(),
            "skn=send",
        ),
        _case(
            "url_signature",
            "https://s3.amazonaws.com/contoso-dumps/heap.hprof?X-Amz-Algorithm=AWS4-HMAC-SHA256&"
            "X-Amz-Date=20261121T021000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature={s}",
            hex_digits(64),
            "X-Amz-Date=20261121T021000Z",
        ),
        # ---- bearer tokens and JWTs
        _case("jwt", "token rejected: Bearer {s}", jwt(), "token rejected: Bearer "),
        _case("jwt", "Authorization: Bearer {s}", jwt("https://azuresre.dev")),
        _case(
            "jwt", '{"access_token": "{s}", "token_type": "Bearer", "expires_in": 3599}', jwt(), "expires_in"
        ),
        _case("jwt", "id_token={s}&state=abc123&session_state=9b1c", jwt(), "state=abc123"),
        _case("jwt", "The failing call used a token {s} issued at 02:09 UTC.", jwt(), "issued at 02:09 UTC"),
        _case("jwt", "X-MS-TOKEN-AAD-ID-TOKEN: {s}", jwt()),
        _case(
            "bearer_token",
            "GET /api/v1/threads answered 401: invalid token (Bearer {s})",
            _pick(ALNUM, 20) + "." + _pick(ALNUM, 43),
            "answered 401",
        ),
        _case(
            "bearer_token", "curl -H 'Authorization: bearer {s}' https://api.contoso.com", _pick(ALNUM, 40)
        ),
        _case(
            "basic_auth",
            "Authorization: Basic {s}",
            basic(),
            "Authorization: Basic ",
        ),
        _case(
            "basic_auth", "jira call failed with header 'Authorization: Basic {s}'", basic("ops@contoso.com")
        ),
        # ---- GitHub
        _case("github_token", "export GITHUB_TOKEN={s}", github(), "GITHUB_TOKEN="),
        _case("github_token", "Authorization: token {s}", github("gho_")),
        _case("github_token", "GH_TOKEN: {s} (expires in 8h)", github("ghu_"), "expires in 8h"),
        _case(
            "github_token", "installation token {s} for contoso/checkout", github("ghs_"), "contoso/checkout"
        ),
        _case("github_token", "refresh_token={s}", github("ghr_"), "refresh_token="),
        _case(
            "github_token",
            "git clone https://x-access-token:{s}@github.com/contoso/infra.git",
            github(),
            "github.com/contoso/infra.git",
            "x-access-token",
        ),
        _case("github_token", "pat: {s}", github_pat()),
        # ---- Slack and Teams
        _case("slack_token", "SLACK_BOT_TOKEN={s}", slack_token(), "SLACK_BOT_TOKEN="),
        _case("slack_token", "posting as {s} to #checkout-oncall", slack_token("xoxp"), "#checkout-oncall"),
        _case("slack_token", '{"ok": false, "error": "invalid_auth", "token": "{s}"}', slack_token("xoxa")),
        _case(
            "slack_webhook",
            "Alert forwarded to https://hooks.slack.com/services/{s}",
            slack_webhook_path(),
            "https://hooks.slack.com/services/",
        ),
        _case(
            "teams_webhook",
            "notify: https://contoso.webhook.office.com/webhookb2/{s}",
            "3f2504e0-4f89-11d3-9a0c-0305e82c3301@72f988bf-86f1-41af-91ab-2d7cd011db47/IncomingWebhook/"
            + hex_digits(32)
            + "/0c3f2a1e-5b7d-4e9a-8f6c-2d1b0a9e8c7f",
            "contoso.webhook.office.com",
        ),
        # ---- AWS
        _case("aws_access_key_id", "aws_access_key_id = {s}", aws_key_id(), "aws_access_key_id"),
        _case("aws_access_key_id", "AssumeRole returned AccessKeyId {s}", aws_key_id("ASIA"), "AssumeRole"),
        _case("aws_secret_access_key", "aws_secret_access_key = {s}", aws_secret(), "aws_secret_access_key"),
        _case("aws_secret_access_key", "export AWS_SECRET_ACCESS_KEY={s}", aws_secret()),
        _case("aws_secret_access_key", '"SecretAccessKey": "{s}",', aws_secret(), "SecretAccessKey"),
        _case("aws_secret_access_key", "AWS_SECRET={s}", aws_secret()),
        # ---- Entra client secrets
        _case("azure_client_secret", "client_secret={s}", azure_client_secret(), "client_secret="),
        _case(
            "azure_client_secret",
            "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent is the value, "
            "not the ID: {s}",
            azure_client_secret(),
            "AADSTS7000215",
        ),
        _case("azure_client_secret", 'AZURE_CLIENT_SECRET="{s}"', azure_client_secret()),
        _case(
            "azure_client_secret",
            "secret {s} expires 2026-12-31",
            azure_client_secret(),
            "expires 2026-12-31",
        ),
        # ---- Google, Stripe, npm
        _case(
            "google_api_key",
            "maps call https://maps.googleapis.com/maps/api/geocode/json?key={s}",
            google_api_key(),
        ),
        _case("google_api_key", "GOOGLE_API_KEY: {s}", google_api_key()),
        _case("stripe_key", "STRIPE_SECRET_KEY={s}", stripe_key()),
        _case("npm_token", "//registry.npmjs.org/:_authToken={s}", npm_token(), "registry.npmjs.org"),
        # ---- private keys
        _case(
            "private_key",
            "The pod mounted this key:\n{s}\nand failed to start.",
            pem(),
            "and failed to start.",
        ),
        _case("private_key", "{s}", pem("PRIVATE KEY")),
        _case("private_key", "ec key:\n{s}", pem("EC PRIVATE KEY")),
        _case("private_key", "ssh: {s}", pem("OPENSSH PRIVATE KEY")),
        _case(
            "private_key",
            '{"type": "service_account", "private_key": "{s}"}',
            pem("PRIVATE KEY").replace("\n", "\\n"),
            "service_account",
        ),
        _case(
            "private_key",
            "error body (cut): " + pem_header("ENCRYPTED PRIVATE KEY") + "\n{s}",
            pem_body()[:150],
            "error body (cut)",
        ),
        # ---- passwords in URLs
        _case(
            "url_password",
            "postgres://reporting:{s}@db.contoso.internal:5432/orders",
            password(),
            "postgres://reporting:",
            "@db.contoso.internal:5432/orders",
        ),
        _case(
            "url_password", "redis://:{s}@cache-prod.redis.cache.windows.net:6380/0", password(), "cache-prod"
        ),
        _case("url_password", "amqps://orders-app:{s}@mq.contoso.com/vhost", password(), "orders-app"),
        _case("url_password", "sqlserver://sa:{s}@sql01:1433", "Pa#" + password() + "?x@y", "@sql01:1433"),
        _case("url_password", "mongodb+srv://admin:{s}@cluster0.ab1cd.mongodb.net/", password(), "cluster0"),
        _case("url_password", "https://deploy:{s}@contoso.scm.azurewebsites.net/api/zipdeploy", password()),
        # ---- labelled passwords, secrets, tokens, API keys
        _case("password", "password={s}", password(), "password="),
        _case(
            "password",
            "Server=tcp:sql-contoso.database.windows.net,1433;Database=orders;User ID=app;Password={s};"
            "Encrypt=True;",
            password(),
            "User ID=app",
            "Encrypt=True",
        ),
        _case("password", "DB_PASSWORD={s}", password(), "DB_PASSWORD="),
        _case(
            "password",
            'login failed: {"username": "svc-orders", "password": "{s}"}',
            password(),
            "svc-orders",
        ),
        _case("password", "pwd: {s}", password()),
        _case("password", "passwd = {s}", password()),
        _case("password", "Pwd={s};Uid=sa;", password(), "Uid=sa"),
        _case("password", '{\\"password\\":\\"{s}\\"}', password()),
        _case("password", "dbPassword: '{s}'", password()),
        _case("secret", "webhook secret={s}", _pick(ALNUM, 32), "webhook secret="),
        _case("secret", "SECRET_KEY = '{s}'", _pick(ALNUM + "!@#$%^&*(-_=+)", 50)),
        _case("client_secret", '"client_secret": "{s}"', _pick(ALNUM + "-_", 32), "client_secret"),
        _case("token", "?token={s}&user=ops", _pick(ALNUM, 32), "&user=ops"),
        _case("token", "ACCESS_TOKEN={s}", _pick(ALNUM + "._-", 48)),
        _case("token", "x-auth-token: {s}", hex_digits(40)),
        _case("api_key", "api_key={s}", _pick(ALNUM, 32), "api_key="),
        _case("api_key", "x-api-key: {s}", _pick(ALNUM, 40)),
        _case("api_key", '{"apiKey": "{s}"}', _pick(ALNUM, 32)),
        _case("api_key", "DD_API_KEY={s}", hex_digits(32)),
    ]


# Text that looks like a secret (or talks about one) and is not: must come through byte for byte.
LOOK_ALIKES: tuple[str, ...] = (
    # identifiers, hashes, ids
    "Correlation id 3f2504e0-4f89-11d3-9a0c-0305e82c3301 for request 0HMVD8H5Q2J6K:00000001",
    "Deployed commit 9fceb02d0ae598e95dc970b74767f19372d61af8 at 02:07 UTC",
    "image digest sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
    "SHA-256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/shop/providers/Microsoft.Web/sites/"
    "checkout-api/slots/staging",
    "/subscriptions/0c3f2a1e-5b7d-4e9a-8f6c-2d1b0a9e8c7f/resourceGroups/rg-secrets/providers/"
    "Microsoft.KeyVault/vaults/kv-contoso-token",
    "Entra app 59f0a04a-b322-4310-adc9-39ac41e9631e (SRE Agent) in tenant "
    "72f988bf-86f1-41af-91ab-2d7cd011db47",
    "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "operation_Id 4bf92f3577b34da6a3ce929d0e0e4736, span 00f067aa0ba902b7",
    "certificate thumbprint 3F2A1B4C5D6E7F8091A2B3C4D5E6F708192A3B4C",
    "timestamp 2026-11-21T02:10:00.1234567Z, duration 00:00:12.345",
    "pod checkout-api-7d9f8b6c5d-x2k4q restarted 14 times; node aks-nodepool1-12345678-vmss000003",
    "build 2026.11.21.3 (run 8812345) deployed by pipeline checkout-ci",
    "base64 payload: aGVsbG8gd29ybGQgZnJvbSBjaGVja291dC1hcGk=",
    "ETag W/\"datetime'2026-11-21T02%3A10%3A00.1234567Z'\"",
    "continuation 1!8!MDAwMDQ2IWhhbmRvZmZzLzAxSjNWRjFQUDZDRUY0MDAwMDAwMDAwMDA-",
    # URLs without credentials
    "https://portal.azure.com/#@contoso.onmicrosoft.com/resource/subscriptions/00000000-0000-0000-0000-000000000000/"
    "overview",
    "https://contosoprodlogs.blob.core.windows.net/exports/run-42.csv",
    "https://github.com/contoso/checkout/pull/1234#issuecomment-987654321",
    "git@github.com:contoso/checkout.git",
    "postgres://reporting@db.contoso.internal:5432/orders",
    "https://api.contoso.com:8443/v1/orders?page=2&pageSize=50",
    "https://management.azure.com/subscriptions/x/providers/Microsoft.Insights/alerts?api-version=2023-01-01",
    "https://contoso.slack.com/archives/C0123456789/p1700000000000000",
    "mailto:oncall@contoso.com?subject=Sev2",
    "sv=2022-11-02&ss=b&srt=co&sp=rl&se=2026-12-01T00:00:00Z (SAS parameters without the signature)",
    "InstrumentationKey=3f2504e0-4f89-11d3-9a0c-0305e82c3301;IngestionEndpoint=https://westeurope-5.in."
    "applicationinsights.azure.com/",
    "Server=tcp:sql-contoso.database.windows.net,1433;Database=orders;"
    "Authentication=Active Directory Managed Identity;",
    "DefaultEndpointsProtocol=https;AccountName=contosoprodlogs;EndpointSuffix=core.windows.net",
    # KQL
    'SigninLogs | where password == "" | project TimeGenerated, UserPrincipalName',
    "AuditLogs | project TimeGenerated, password, token, secret",
    "datatable(user:string, password:string, token:string) []",
    "AppEvents | extend token = tostring(parse_json(Properties).token) | where isnotempty(token)",
    "T | project-rename password = UserPassword | where password =~ 'x'",
    "T | where secret != '' and pwd == '' and token startswith 'ey'",
    "exceptions | where outerMessage has 'token expired' | summarize count() by bin(timestamp, 5m)",
    # labelled but empty or a placeholder
    "token=&user=ops",
    "token=<token>",
    "Authorization: Bearer <token>",
    "Authorization: Bearer ***",
    "password: ********",
    'client_secret: null, "password": "", "token": null',
    "api_key=${API_KEY}",
    "password=$DB_PASSWORD and password=%DB_PASSWORD%",
    "AccountKey=<your account key>",
    "sig=<signature>",
    "${{ secrets.GITHUB_TOKEN }}",
    "DB_PASSWORD=@Microsoft.KeyVault(SecretUri=https://kv-contoso.vault.azure.net/secrets/db-password/)",
    "postgres://reporting:<password>@db.contoso.internal/orders",
    "token={{ .Values.token }}",
    "apikey=YOUR_API_KEY",
    # prose
    "I am the bearer of bad news: the rollback failed.",
    "Bearer authentication is required; send a bearer token in the Authorization header.",
    "Basic authentication is disabled on the SCM site.",
    "password reset requested for alice@contoso.com; passwordless sign-in is enabled",
    "Token: expired",
    "Secret: none",
    "password: reset via SSPR",
    "Error: token expired at 02:10Z; the client will refresh it",
    "Key Vault secret 'db-password' version 3 was rotated; secretName: checkout-tls",
    "GitHub tokens start with ghp_ and JWTs with eyJ; AWS key ids with AKIA.",
    "deployed to southeastasia and eastasia; ticket ASIA-1234",
    "xoxo from the on-call team",
    # look-alike parameters and fields
    "max_tokens=4096 tokenCount: 1532 token_type=Bearer&expires_in=3599",
    "password_hash=bcrypt column, passwordPolicy: strong",
    "pwd=/home/site/wwwroot",
    "api-version=2024-01-01&$top=50",
    "sig=1 and signature verified",
    "| password | string |",
    # public key material
    "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ0hBTk5FTF9URVNUX0NFUlRJRklDQVRFMAoGCCqGSM49\n"
    "-----END CERTIFICATE-----",
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7kL9mZ2V0cmFuZG9tYnl0ZXNmb3J0ZXN0 ops@jumpbox",
    "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----",
)

SECRETS: tuple[Secret, ...] = tuple(_secrets())


@dataclass(frozen=True)
class Figures:
    """How the redactor does on the corpus."""

    secrets: int
    caught: int
    missed: list[Secret]
    look_alikes: int
    changed: list[str]
    wrong_kind: list[Secret]


def figures() -> Figures:
    """Run the corpus through the redactor."""
    from handoff.domain.redaction import redact_text

    missed, wrong_kind = [], []
    for case in SECRETS:
        out, counts = redact_text(case.text)
        if case.value in out:
            missed.append(case)
        elif not counts.get(case.kind) or any(part not in out for part in case.keep):
            wrong_kind.append(case)
    changed = [text for text in LOOK_ALIKES if redact_text(text) != (text, {})]
    return Figures(
        secrets=len(SECRETS),
        caught=len(SECRETS) - len(missed),
        missed=missed,
        look_alikes=len(LOOK_ALIKES),
        changed=changed,
        wrong_kind=wrong_kind,
    )


def main() -> None:
    from handoff.domain.redaction import redact_text

    result = figures()
    kinds = sorted({case.kind for case in SECRETS})
    missed = len(result.missed)
    print(f"secrets: {result.secrets} of {len(kinds)} kinds; caught {result.caught}, missed {missed}")
    print(f"look-alikes: {result.look_alikes}; changed {len(result.changed)}")
    for case in result.missed:
        print(f"  missed {case.kind}: {case.text[:100]!r}")
    for case in result.wrong_kind:
        print(f"  wrong kind or lost context, expected {case.kind}: {redact_text(case.text)}")
    for text in result.changed:
        print(f"  changed: {redact_text(text)[0][:120]!r}")
    for name, text in timing_texts().items():
        best = min(_timed(text) for _ in range(5))
        print(f"{name}: {len(text) // 1024} KiB redacted in {best * 1000:.1f} ms (best of 5)")


def timing_texts() -> dict[str, str]:
    """256 KiB texts to time: a KQL result without secrets, and the corpus repeated (a secret every
    100 bytes, far denser than any real request)."""
    rows = [
        [f"2026-11-21T02:{i % 60:02d}:00Z", "SqlException", i, f"3f2504e0-4f89-11d3-9a0c-{i:012d}"]
        for i in range(6000)
    ]
    table = json.dumps(
        {"kind": "kql", "columns": ["timestamp", "type", "count_", "operation_Id"], "rows": rows}
    )
    dense = "\n".join(case.text for case in SECRETS) + "\n" + "\n".join(LOOK_ALIKES)
    size = 256 * 1024
    return {
        "KQL result": (table * (size // len(table) + 1))[:size],
        "corpus repeated": (dense * (size // len(dense) + 1))[:size],
    }


def _timed(text: str) -> float:
    from handoff.domain.redaction import redact_text

    start = time.perf_counter()
    redact_text(text)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
