"""CI detection from environment variables, URL stripping and key redaction."""

from __future__ import annotations

import pytest
from runner.redact import redact, safe_url
from runner.report import CiInfo, ci_info


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {
                "GITHUB_SHA": "a1",
                "GITHUB_RUN_ID": "7",
                "GITHUB_SERVER_URL": "https://github.com/",
                "GITHUB_REPOSITORY": "acme/geo",
            },
            CiInfo("github", "a1", "7", "https://github.com/acme/geo/actions/runs/7"),
        ),
        ({"GITHUB_SHA": "a1"}, CiInfo("github", "a1", None, None)),
        (
            {"CI_COMMIT_SHA": "b2", "CI_PIPELINE_ID": "9", "CI_PIPELINE_URL": "https://gl/p/9"},
            CiInfo("gitlab", "b2", "9", "https://gl/p/9"),
        ),
        (
            {"BUILDKITE": "true", "BUILDKITE_COMMIT": "c3", "BUILDKITE_BUILD_NUMBER": "12",
             "BUILDKITE_BUILD_URL": "https://bk/b/12"},
            CiInfo("buildkite", "c3", "12", "https://bk/b/12"),
        ),
        (
            {"CIRCLE_SHA1": "d4", "CIRCLE_BUILD_NUM": "5", "CIRCLE_BUILD_URL": "https://circle/5"},
            CiInfo("circleci", "d4", "5", "https://circle/5"),
        ),
        (
            {"JENKINS_URL": "https://j", "GIT_COMMIT": "e5", "BUILD_ID": "3",
             "BUILD_URL": "https://j/job/3/"},
            CiInfo("jenkins", "e5", "3", "https://j/job/3/"),
        ),
        ({"HOME": "/root", "PATH": "/bin"}, CiInfo()),
    ],
)  # fmt: skip
def test_ci_providers_are_recognised(env: dict[str, str], expected: CiInfo) -> None:
    assert ci_info(env) == expected


def test_ci_info_round_trips_through_json() -> None:
    info = CiInfo("github", "a1", "7", "https://github.com/acme/geo/actions/runs/7")
    assert CiInfo.from_json(info.to_json()) == info


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://api.mentionlab.io", "https://api.mentionlab.io"),
        ("https://u:p@api.mentionlab.io:8443/v1?key=x#f", "https://api.mentionlab.io:8443/v1"),
        ("http://[::1]:8000/", "http://[::1]:8000/"),
        ("https://host/?token=ml_live_abc", "https://host/"),
        ("https://host:badport/x?y", "https://host:badport/x"),
    ],
)
def test_safe_url_drops_credentials(url: str, expected: str) -> None:
    assert safe_url(url) == expected


def test_redact_masks_every_key_and_is_idempotent() -> None:
    text = "key ml_live_AbC-12_x and ml_test_zz9 in one line"
    masked = redact(text)
    assert masked == "key ml_live_*** and ml_live_*** in one line"
    assert redact(masked) == masked
