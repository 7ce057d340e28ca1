"""The MentionLab API client and its typed responses."""

from runner.api.client import (
    ClientOptions,
    MentionLabClient,
    Reply,
    api_key_from_env,
    check_api_key,
    check_base_url,
)
from runner.api.models import CachedJob, Job, JobPage, PageInfo, ProjectInfo, QueryPage

__all__ = [
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
    "check_api_key",
    "check_base_url",
]
