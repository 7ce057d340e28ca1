"""The MentionLab API client and its typed responses."""

from runner.api.client import (
    API_KEY_ENV,
    BASE_URL_ENV,
    DEFAULT_BASE_URL,
    ClientOptions,
    MentionLabClient,
    Reply,
    api_key_from_env,
    check_base_url,
)
from runner.api.models import CachedJob, Job, JobPage, PageInfo, ProjectInfo, QueryPage

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "CachedJob",
    "ClientOptions",
    "Job",
    "JobPage",
    "MentionLabClient",
    "PageInfo",
    "ProjectInfo",
    "QueryPage",
    "Reply",
    "api_key_from_env",
    "check_base_url",
]
