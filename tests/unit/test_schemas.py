"""Validation against the official OCPP schemas, the action catalog and the follow-up table."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest

from oye_shared.inject import Problem
from oye_shared.schemas import (
    CALL_ERROR_CODES,
    FOLLOW_UP_REPORTS,
    VERSIONS,
    NoResponseError,
    UnknownActionError,
    UnsupportedVersionError,
    Version,
    all_actions,
    call_error_code,
    charger_to_csms_actions,
    check_action,
    csms_to_charger_actions,
    follow_up_report,
    ocpp_version,
    send_actions,
    validate_request,
    validate_request_text,
    validate_response,
    validate_response_text,
)

pytestmark = pytest.mark.unit

SCHEMA_DIRS: dict[Version, str] = {"1.6": "v16", "2.0.1": "v201", "2.1": "v21"}
LIMIT = "$.csChargingProfiles.chargingSchedule.chargingSchedulePeriod[0].limit"


def schema(version: Version, file_stem: str) -> dict[str, Any]:
    """One official schema file as shipped in the ocpp package."""
    path = resources.files("ocpp") / SCHEMA_DIRS[version] / "schemas" / f"{file_stem}.json"
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def schema_actions(version: Version) -> set[str]:
    """The actions named by a version's schema files."""
    directory = resources.files("ocpp") / SCHEMA_DIRS[version] / "schemas"
    stems = {entry.name.removesuffix(".json") for entry in directory.iterdir()}
    return {stem.removesuffix("Response").removesuffix("Request") for stem in stems}


def profile_text(limit: str) -> str:
    """Guide scenario A with the limit written exactly as given."""
    return (
        '{"connectorId":0,"csChargingProfiles":{"chargingProfileId":1,"stackLevel":0,'
        '"chargingProfilePurpose":"ChargePointMaxProfile","chargingProfileKind":"Absolute",'
        '"chargingSchedule":{"chargingRateUnit":"A","chargingSchedulePeriod":'
        f'[{{"startPeriod":0,"limit":{limit}}}]}}}}}}'
    )


# --- Exact numbers ----------------------------------------------------------------------------


@pytest.mark.parametrize("limit", ["21.4", "0.3", "16.0", "7400.0", "32", "6.0", "0.1", "1e1"])
def test_multiple_of_accepts_exact_tenths_written_as_text(limit: str) -> None:
    """multipleOf 0.1 holds for 21.4 and 0.3 as sent, which float arithmetic would refuse."""
    assert validate_request_text("1.6", "SetChargingProfile", profile_text(limit)) == []


@pytest.mark.parametrize("limit", [21.4, 0.3, 16.0, 7400.0, 32, 6.0])
def test_multiple_of_accepts_floats_in_an_already_parsed_payload(limit: float) -> None:
    """Floats are compared by their shortest repr, so 21.4 stays 21.4."""
    payload = json.loads(profile_text("0"))
    payload["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] = limit
    assert validate_request("1.6", "SetChargingProfile", payload) == []


def test_multiple_of_refuses_16_05_as_text_and_as_float() -> None:
    """16.05 is not a multiple of 0.1, and the problem points at the limit."""
    expected = [Problem(path=LIMIT, message="16.05 is not a multiple of 0.1")]
    assert validate_request_text("1.6", "SetChargingProfile", profile_text("16.05")) == expected
    payload = json.loads(profile_text("16.05"))
    assert validate_request("1.6", "SetChargingProfile", payload) == expected


def test_multiple_of_also_holds_in_the_16_composite_schedule_response() -> None:
    """GetCompositeSchedule responses carry the same multipleOf 0.1 limits."""
    response = (
        '{"status":"Accepted","connectorId":1,"scheduleStart":"2025-06-01T12:00:00Z",'
        '"chargingSchedule":{"duration":3600,"chargingRateUnit":"A","chargingSchedulePeriod":'
        '[{"startPeriod":0,"limit":21.4},{"startPeriod":1800,"limit":16.05}]}}'
    )
    problems = validate_response_text("1.6", "GetCompositeSchedule", response)
    assert problems == [
        Problem(
            path="$.chargingSchedule.chargingSchedulePeriod[1].limit",
            message="16.05 is not a multiple of 0.1",
        )
    ]


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json_numbers(text: str) -> None:
    """Python's json reads NaN and Infinity; they are reported, once, at their path."""
    assert validate_request_text("1.6", "SetChargingProfile", profile_text(text)) == [
        Problem(path=LIMIT, message=f"{text} is not a JSON number")
    ]
    payload = json.loads(profile_text(text))
    assert validate_request("1.6", "SetChargingProfile", payload) == [
        Problem(path=LIMIT, message=f"{text} is not a JSON number")
    ]


def test_text_that_is_not_json_is_one_problem_at_the_root() -> None:
    """Broken JSON text gives a single problem at $."""
    problems = validate_request_text("1.6", "Heartbeat", "{")
    assert [problem.path for problem in problems] == ["$"]
    assert problems[0].message.startswith("not valid JSON")


# --- Formats, drafts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "timestamp",
    ["2025-06-01T12:00:00Z", "2025-06-01T12:00:00.123Z", "2025-06-01T14:00:00+02:00"],
)
def test_rfc3339_date_times_are_valid(timestamp: str) -> None:
    """UTC with Z, fractions and offsets are RFC 3339 date-times."""
    payload = {"timestamp": timestamp, "connectorStatus": "Occupied", "evseId": 1, "connectorId": 1}
    assert validate_request("2.0.1", "StatusNotification", payload) == []


@pytest.mark.parametrize(
    "timestamp", ["yesterday", "2025-06-01", "2025-02-30T12:00:00Z", "2025-06-01T25:00:00Z"]
)
def test_date_times_are_checked(timestamp: str) -> None:
    """A date-time field refuses words, bare dates and impossible dates or hours."""
    payload = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
    problems = validate_request("1.6", "StatusNotification", payload | {"timestamp": timestamp})
    assert problems == [Problem(path="$.timestamp", message=f"{timestamp!r} is not a 'date-time'")]


def test_a_uri_needs_a_scheme() -> None:
    """1.6 UpdateFirmware location is format uri: a bare host name is refused."""
    payload = {"retrieveDate": "2025-06-01T12:00:00Z", "location": "ftp://fw.example/1.bin"}
    assert validate_request("1.6", "UpdateFirmware", payload) == []
    bad = validate_request("1.6", "UpdateFirmware", payload | {"location": "fw.example/1.bin"})
    assert [problem.path for problem in bad] == ["$.location"]


def test_the_validator_follows_each_schemas_draft() -> None:
    """Draft-04 (1.6 core) refuses 1.0 as an integer; draft-06 (2.x) accepts it."""
    schema_16 = schema("1.6", "StatusNotification")
    assert schema_16["$schema"] == "http://json-schema.org/draft-04/schema#"
    status_16 = {"connectorId": 1.0, "errorCode": "NoError", "status": "Available"}
    assert validate_request("1.6", "StatusNotification", status_16) == [
        Problem(path="$.connectorId", message="1.0 is not of type 'integer'")
    ]
    status_201: dict[str, Any] = {"timestamp": "2025-06-01T12:00:00Z", "connectorId": 1}
    status_201 |= {"connectorStatus": "Occupied", "evseId": 1.0}
    assert validate_request("2.0.1", "StatusNotification", status_201) == []
    assert validate_request("2.0.1", "StatusNotification", status_201 | {"evseId": 1.5}) == [
        Problem(path="$.evseId", message="1.5 is not of type 'integer'")
    ]


# --- Every problem, with its path ---------------------------------------------------------------


def test_every_problem_is_listed_with_its_path_in_path_order() -> None:
    """All problems come back at once, sorted by path (indexes numerically)."""
    periods: list[dict[str, Any]] = [{"startPeriod": n * 60, "limit": 16.0} for n in range(11)]
    periods[2]["limit"] = 16.05
    periods[10]["limit"] = 16.05
    del periods[1]["startPeriod"]
    payload = {
        "connectorId": "1",
        "csChargingProfiles": {
            "chargingProfileId": 1,
            "stackLevel": 0,
            "chargingProfilePurpose": "Everything",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": periods},
        },
        "extra field": True,
    }
    problems = validate_request("1.6", "SetChargingProfile", payload)
    periods_path = "$.csChargingProfiles.chargingSchedule.chargingSchedulePeriod"
    assert [problem.path for problem in problems] == [
        "$",
        "$.connectorId",
        "$.csChargingProfiles.chargingProfilePurpose",
        f"{periods_path}[1]",
        f"{periods_path}[2].limit",
        f"{periods_path}[10].limit",
    ]
    assert "'extra field' was unexpected" in problems[0].message
    assert problems[3].message == "'startPeriod' is a required property"


def test_a_valid_payload_has_no_problems() -> None:
    """The notes' 2.0.1 SetChargingProfile example is valid on 2.0.1 and 2.1."""
    payload = {
        "evseId": 0,
        "chargingProfile": {
            "id": 1,
            "stackLevel": 0,
            "chargingProfilePurpose": "ChargingStationMaxProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": [
                {
                    "id": 1,
                    "startSchedule": "2025-06-01T00:00:00Z",
                    "chargingRateUnit": "W",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 22000.0}],
                }
            ],
        },
    }
    assert validate_request("2.0.1", "SetChargingProfile", payload) == []
    assert validate_request("2.1", "SetChargingProfile", payload) == []


# --- Versions -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "version"),
    [
        ("1.6", "1.6"),
        ("ocpp1.6", "1.6"),
        ("2.0.1", "2.0.1"),
        ("ocpp2.0.1", "2.0.1"),
        ("2.1", "2.1"),
        ("ocpp2.1", "2.1"),
    ],
)
def test_versions_and_subprotocol_tokens_are_both_understood(given: str, version: str) -> None:
    """ "ocpp1.6" and "1.6" name the same version, everywhere a version is taken."""
    assert ocpp_version(given) == version
    assert validate_request(given, "Heartbeat", {}) == []


@pytest.mark.parametrize("given", ["1.5", "ocpp2.0", "2.0", "", "OCPP1.6"])
def test_other_versions_are_refused(given: str) -> None:
    """Versions without schemas raise UnsupportedVersionError (a ValueError)."""
    with pytest.raises(UnsupportedVersionError):
        validate_request(given, "Heartbeat", {})


# --- Unknown actions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "action", "suggestion"),
    [
        ("1.6", "GetChargingProfiles", "GetCompositeSchedule"),
        ("1.6", "ReportChargingProfiles", "GetCompositeSchedule"),
        ("1.6", "RequestStartTransaction", "RemoteStartTransaction"),
        ("2.0.1", "RemoteStartTransaction", "RequestStartTransaction"),
        ("2.1", "RemoteStartTransaction", "RequestStartTransaction"),
        ("1.6", "RequestStopTransaction", "RemoteStopTransaction"),
        ("2.0.1", "RemoteStopTransaction", "RequestStopTransaction"),
        ("1.6", "GetVariables", "GetConfiguration"),
        ("2.0.1", "GetConfiguration", "GetVariables"),
        ("1.6", "SetVariables", "ChangeConfiguration"),
        ("2.0.1", "ChangeConfiguration", "SetVariables"),
        ("1.6", "GetBaseReport", "GetConfiguration"),
        ("1.6", "GetReport", "GetConfiguration"),
        ("1.6", "TransactionEvent", "StartTransaction"),
        ("2.0.1", "StartTransaction", "TransactionEvent"),
        ("2.0.1", "StopTransaction", "TransactionEvent"),
        ("2.0.1", "ExtendedTriggerMessage", "TriggerMessage"),
        ("2.1", "GetDiagnostics", "GetLog"),
        ("2.0.1", "DiagnosticsStatusNotification", "LogStatusNotification"),
        ("2.0.1", "SignedUpdateFirmware", "UpdateFirmware"),
        ("2.1", "SignedFirmwareStatusNotification", "FirmwareStatusNotification"),
        ("1.6", "heartbeat", "Heartbeat"),
        ("2.0.1", "BootNotificationRequest", "BootNotification"),
    ],
)
def test_an_unknown_action_names_what_to_use_instead(
    version: Version, action: str, suggestion: str
) -> None:
    """Each known counterpart is suggested, and the message names the version."""
    with pytest.raises(UnknownActionError) as caught:
        validate_request(version, action, {})
    error = caught.value
    assert (error.version, error.action, error.suggestion) == (version, action, suggestion)
    assert str(error).startswith(f"{action} does not exist in OCPP {version}; use {suggestion}")
    assert suggestion in all_actions(version)


def test_the_message_for_get_charging_profiles_on_16_is_exact() -> None:
    """The wording the inject API shows a user who follows a 2.0.1 recipe on a 1.6 charger."""
    with pytest.raises(UnknownActionError) as caught:
        validate_request_text("1.6", "GetChargingProfiles", "{}")
    assert str(caught.value) == (
        "GetChargingProfiles does not exist in OCPP 1.6; use GetCompositeSchedule"
    )
    assert isinstance(caught.value, ValueError)


def test_transaction_event_on_16_offers_both_transaction_messages() -> None:
    """TransactionEvent maps to two 1.6 actions; both are named."""
    with pytest.raises(UnknownActionError) as caught:
        check_action("1.6", "TransactionEvent")
    assert caught.value.alternatives == ("StartTransaction", "StopTransaction")
    assert str(caught.value).endswith("use StartTransaction or StopTransaction")


def test_an_action_of_a_later_version_says_where_it_exists() -> None:
    """A 2.1-only action on 2.0.1 has no suggestion but says it is 2.1."""
    with pytest.raises(UnknownActionError) as caught:
        validate_response("2.0.1", "GetTariffs", {})
    assert caught.value.suggestion is None
    assert str(caught.value) == "GetTariffs does not exist in OCPP 2.0.1 (only in OCPP 2.1)"


def test_a_vendor_action_has_no_suggestion() -> None:
    """An action no version knows is simply unknown."""
    with pytest.raises(UnknownActionError) as caught:
        validate_request("2.1", "AcmeFlashLeds", {})
    assert caught.value.suggestion is None
    assert str(caught.value) == "AcmeFlashLeds does not exist in OCPP 2.1"


def test_an_action_name_cannot_reach_outside_the_schema_folder() -> None:
    """Action names are checked against the catalog before any file is opened."""
    with pytest.raises(UnknownActionError):
        validate_request("2.0.1", "../v16/schemas/Heartbeat", {})


# --- The action catalog -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "from_charger", "from_csms", "total"),
    [("1.6", 14, 26, 39), ("2.0.1", 25, 40, 64), ("2.1", 37, 55, 91)],
)
def test_action_counts_per_version_and_direction(
    version: Version, from_charger: int, from_csms: int, total: int
) -> None:
    """The catalog matches the notes' tables; DataTransfer is the one action in both rows."""
    assert len(charger_to_csms_actions(version)) == from_charger
    assert len(csms_to_charger_actions(version)) == from_csms
    assert len(all_actions(version)) == total
    both = charger_to_csms_actions(version) & csms_to_charger_actions(version)
    assert both == {"DataTransfer"}


@pytest.mark.parametrize("version", VERSIONS)
def test_the_catalog_is_exactly_the_schema_files(version: Version) -> None:
    """Every schema file has a catalog action and every action has its schema files."""
    assert all_actions(version) == schema_actions(version)


def test_the_21_send_has_one_schema_file_and_no_response() -> None:
    """NotifyPeriodicEventStream validates as a request and has no response to validate."""
    assert send_actions("2.1") == {"NotifyPeriodicEventStream"}
    assert send_actions("2.0.1") == send_actions("1.6") == frozenset()
    assert "NotifyPeriodicEventStream" in charger_to_csms_actions("2.1")
    payload = {
        "id": 1,
        "pending": 0,
        "basetime": "2025-06-01T12:00:00Z",
        "data": [{"t": 0, "v": "230.4"}],
    }
    assert validate_request("2.1", "NotifyPeriodicEventStream", payload) == []
    with pytest.raises(NoResponseError):
        validate_response("2.1", "NotifyPeriodicEventStream", {})


@pytest.mark.parametrize("version", VERSIONS)
def test_every_schema_compiles_and_accepts_nothing_blindly(version: Version) -> None:
    """Each request and response schema loads; an unexpected field is refused everywhere."""
    for action in sorted(all_actions(version)):
        problems = validate_request(version, action, {"oyeNotAField": 1})
        assert any("oyeNotAField" in problem.message for problem in problems), action
        if action not in send_actions(version):
            problems = validate_response(version, action, {"oyeNotAField": 1})
            assert any("oyeNotAField" in problem.message for problem in problems), action


# --- Follow-up reports --------------------------------------------------------------------------


@pytest.mark.parametrize(("request_action", "report"), sorted(FOLLOW_UP_REPORTS.items()))
def test_follow_up_reports_are_correlated_by_request_id_in_the_schemas(
    request_action: str, report: str
) -> None:
    """Each request has a required requestId; each report a required requestId and a tbc flag."""
    versions: list[Version] = [v for v in ("2.0.1", "2.1") if request_action in all_actions(v)]
    assert versions
    for version in versions:
        assert request_action in csms_to_charger_actions(version)
        assert report in charger_to_csms_actions(version)
        request_schema = schema(version, f"{request_action}Request")
        assert "requestId" in request_schema["required"]
        report_schema = schema(version, f"{report}Request")
        assert "requestId" in report_schema["required"]
        assert "tbc" in report_schema["properties"]
        assert follow_up_report(version, request_action) == report


def test_only_three_reports_also_number_their_parts() -> None:
    """seqNo exists in NotifyReport, NotifyMonitoringReport and NotifyCustomerInformation only."""
    with_seq_no = {
        report
        for report in set(FOLLOW_UP_REPORTS.values())
        if "seqNo" in schema("2.1", f"{report}Request")["properties"]
    }
    assert with_seq_no == {"NotifyReport", "NotifyMonitoringReport", "NotifyCustomerInformation"}


def test_follow_ups_depend_on_the_version() -> None:
    """1.6 has no requestId reports; GetDERControl is 2.1 only."""
    assert follow_up_report("1.6", "GetCompositeSchedule") is None
    assert follow_up_report("1.6", "GetChargingProfiles") is None
    assert follow_up_report("2.0.1", "GetDERControl") is None
    assert follow_up_report("2.1", "GetDERControl") == "ReportDERControl"
    assert follow_up_report("ocpp2.0.1", "GetReport") == "NotifyReport"


def test_status_notifications_are_not_reports() -> None:
    """GetLog's LogStatusNotification has an optional requestId and no tbc: not a report."""
    log_status = schema("2.0.1", "LogStatusNotificationRequest")
    assert "requestId" in log_status["properties"]
    assert "requestId" not in log_status["required"]
    assert "tbc" not in log_status["properties"]
    assert "GetLog" not in FOLLOW_UP_REPORTS


# --- CALLERROR codes ----------------------------------------------------------------------------


def test_error_codes_are_spelled_the_versions_way() -> None:
    """1.6 keeps FormationViolation and OccurenceConstraintViolation; 2.x fixed both."""
    assert call_error_code("1.6", "FormatViolation") == "FormationViolation"
    assert call_error_code("2.0.1", "FormationViolation") == "FormatViolation"
    assert call_error_code("ocpp1.6", "OccurrenceConstraintViolation") == (
        "OccurenceConstraintViolation"
    )
    assert call_error_code("2.1", "OccurenceConstraintViolation") == (
        "OccurrenceConstraintViolation"
    )
    assert call_error_code("2.1", "NotImplemented") == "NotImplemented"
    assert (len(CALL_ERROR_CODES["1.6"]), len(CALL_ERROR_CODES["2.0.1"])) == (10, 12)
    with pytest.raises(ValueError, match="RpcFrameworkError"):
        call_error_code("1.6", "RpcFrameworkError")


# --- The smart charging guide's payloads ------------------------------------------------------

GUIDE_16_REQUESTS = [
    (
        "SetChargingProfile",
        """{"connectorId": 0, "csChargingProfiles": {"chargingProfileId": 1, "stackLevel": 0,
        "chargingProfilePurpose": "ChargePointMaxProfile", "chargingProfileKind": "Absolute",
        "chargingSchedule": {"chargingRateUnit": "A",
        "chargingSchedulePeriod": [{ "startPeriod": 0, "limit": 32.0 }]}}}""",
    ),
    (
        "SetChargingProfile",
        """{"connectorId": 1, "csChargingProfiles": {"chargingProfileId": 2, "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Relative",
        "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [
        { "startPeriod": 0, "limit": 6.0 }, { "startPeriod": 28800, "limit": 32.0 } ]}}}""",
    ),
    (
        "SetChargingProfile",
        """{"connectorId": 1, "csChargingProfiles": {"chargingProfileId": 3, "transactionId": 12345,
        "stackLevel": 1, "chargingProfilePurpose": "TxProfile", "chargingProfileKind": "Absolute",
        "chargingSchedule": {"chargingRateUnit": "A",
        "chargingSchedulePeriod": [{ "startPeriod": 0, "limit": 10.0 }]}}}""",
    ),
    ("ClearChargingProfile", '{"id": 1}'),
    ("GetCompositeSchedule", '{"connectorId": 0, "duration": 3600, "chargingRateUnit": "A"}'),
    ("GetConfiguration", '{"key": ["ScheduledMode"]}'),
    ("ChangeConfiguration", '{"key": "ScheduledMode", "value": "1"}'),
]


@pytest.mark.parametrize(("action", "text"), GUIDE_16_REQUESTS)
def test_the_guides_payloads_are_valid_16_requests(action: str, text: str) -> None:
    """Scenarios A, B, C, clearing, composite schedule and configuration are valid 1.6."""
    assert validate_request_text("1.6", action, text) == []
    assert validate_request("ocpp1.6", action, json.loads(text)) == []


def test_the_guides_composite_schedule_answer_is_a_valid_16_response() -> None:
    """The guide's example GetCompositeSchedule response passes the 1.6 response schema."""
    text = """{"status": "Accepted", "scheduleStart": "2023-12-15T10:00:00Z", "connectorId": 0,
    "chargingSchedule": {"duration": 3600, "chargingRateUnit": "A",
    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}]}}"""
    assert validate_response_text("1.6", "GetCompositeSchedule", text) == []


def test_the_guides_get_charging_profiles_is_unknown_on_16() -> None:
    """The guide's GetChargingProfiles does not exist in 1.6: use GetCompositeSchedule."""
    text = '{"connectorId": 0, "chargingProfilePurpose": "ChargePointMaxProfile"}'
    with pytest.raises(UnknownActionError) as caught:
        validate_request_text("1.6", "GetChargingProfiles", text)
    assert caught.value.suggestion == "GetCompositeSchedule"
    assert caught.value.version == "1.6"
    # On 2.0.1 the action exists, but that payload is the wrong shape for it.
    problems = validate_request_text("2.0.1", "GetChargingProfiles", text)
    assert {problem.path for problem in problems} == {"$"}
    assert any("'requestId' is a required property" in p.message for p in problems)
