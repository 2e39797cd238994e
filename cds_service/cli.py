"""The `cds-service` command: serve, evaluate a request offline, load fixtures, report feedback."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import requests

from cds_service import __version__
from cds_service.settings import Settings, SettingsError

DEFAULT_FIXTURES = Path("fhir_fixtures") / "patients"
CLI_USER = "Practitioner/cds-service-cli"  # the user an evaluated Bundle is "viewed" by


class CliError(Exception):
    """A problem the user can fix (bad file, refused request); printed without a traceback."""


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.command(args) or 0
    except SettingsError as exc:
        print(f"cds-service: configuration error: {exc}", file=sys.stderr)
        return 2
    except CliError as exc:
        print(f"cds-service: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cds-service",
        description="CDS Hooks 2.0 service for CMV treatment in immunocompromised patients. "
        "Configuration comes from CDS_* environment variables (see README).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    serve = commands.add_parser(
        "serve", help="run the service with gunicorn", description="Run the service with gunicorn "
        "(gthread workers whose threads are reused warmest first; the app is built once, before they "
        "fork). Settings are checked and the database tables created before it starts: a bad setting "
        "stops it (exit 2), and so does a database URL it cannot use (exit 1); a database that is down "
        "does not (feedback answers 503 until it is back)."
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    serve.add_argument(
        "--workers", type=_positive, default=_default_workers(),
        help=f"worker processes (default 2 x CPU cores, here {_default_workers()})",
    )
    serve.add_argument("--threads", type=_positive, default=4, help="threads per worker (default 4)")
    serve.add_argument(
        "--timeout", type=_positive, default=30, help="seconds before a stuck worker is restarted (default 30)"
    )
    serve.set_defaults(command=serve_command)

    evaluate = commands.add_parser(
        "evaluate",
        help="run a hook request or patient Bundle offline and show facts and cards",
        description="Run FILE through the same validation, prefetch resolution and service as the "
        "HTTP endpoint, offline (FHIR is fetched only if the request names a fhirServer), and print "
        "the facts used and the cards. FILE is a CDS Hooks request, or a FHIR patient Bundle: it is "
        "sent as a patient-view call, or as --hook with the Bundle's draft MedicationRequests as "
        "draftOrders (all selected).",
    )
    evaluate.add_argument("file", metavar="FILE", type=Path, help="hook request or FHIR Bundle (JSON)")
    evaluate.add_argument(
        "--hook", choices=("patient-view", "order-select", "order-sign"),
        help="hook to call with a Bundle (default patient-view); for a request, must match its hook",
    )
    evaluate.add_argument(
        "--json", action="store_true", help='print {"facts", "unavailable", "cards"} as JSON'
    )
    evaluate.add_argument(
        "--at", metavar="ISO-DATETIME", type=_datetime,
        help="evaluate as of this time (default CDS_EVALUATION_TIME, else now)",
    )
    evaluate.set_defaults(command=evaluate_command)

    load = commands.add_parser(
        "load-fixtures",
        help="load the fixture patient Bundles into a FHIR server",
        description="POST each transaction Bundle in DIR to the FHIR server's base; if the server "
        "refuses transactions (or a Bundle is not one), PUT each resource instead, or POST one that has no "
        "id (Patients first). Only a FHIR answer counts as written: a redirect or an HTML page is a failure.",
    )
    load.add_argument("--fhir-server", required=True, metavar="URL", help="FHIR R4 base URL")
    load.add_argument(
        "dir", nargs="?", type=Path, default=DEFAULT_FIXTURES, metavar="DIR",
        help=f"directory of Bundle JSON files (default {DEFAULT_FIXTURES})",
    )
    load.set_defaults(command=load_fixtures_command)

    report = commands.add_parser(
        "feedback-report",
        help="cards issued and clinician feedback, by service and card topic",
        description="Report, per service and card topic, the cards issued, feedback received, "
        "acceptance rate and most frequent override reasons (from CDS_DATABASE_URL).",
    )
    report.add_argument("--json", action="store_true", help="print the rows as JSON")
    report.set_defaults(command=feedback_report_command)
    return parser


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _datetime(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r} needs a time zone, e.g. 2026-11-26T12:00:00Z")
    return moment


def _default_workers() -> int:
    return max(2, 2 * (os.cpu_count() or 1))


# ------------------------------------------------------------------------------------------ serve


def serve_command(args: argparse.Namespace) -> int:
    from gunicorn.app.base import BaseApplication

    from cds_service.app import close_connections, create_app
    from cds_service.collector import serve_without_automatic_collection
    from cds_service.hooks.storage import Database, StorageUnavailable

    settings = Settings.from_env()
    # A database URL it cannot use (an unsupported database, an SQLite file whose directory cannot be
    # made) stops it here with its reason, not a traceback; a database that is only down does not:
    # hook calls do not need it, feedback answers 503 until it is back.
    try:
        Database(settings.database_url).engine.dispose()
    except (StorageUnavailable, ValueError) as exc:
        raise CliError(f"database: {exc}") from None

    class Server(BaseApplication):
        def load_config(self):
            host = f"[{args.host}]" if ":" in args.host else args.host
            options = {
                "bind": f"{host}:{args.port}",
                "workers": args.workers,
                "threads": args.threads,
                # A dotted path, not the class: gunicorn 22 and 23 log the worker class by name.
                "worker_class": "cds_service.worker.WarmThreadWorker",
                # Its own lines as JSON, without the request line or URI it would quote (server_log).
                "logger_class": "cds_service.server_log.ServerLog",
                "timeout": args.timeout,
                "keepalive": 5,
                "loglevel": settings.log_level.lower(),
                # Room for a JWT up to the verifier's own limit, so an oversized token is its 401.
                "limit_request_field_size": 32 * 1024,
                # The app is built once, before the workers fork: they start at once (not each
                # importing it while the first already serves) and share its memory.
                "preload_app": True,
            }
            for key, value in options.items():
                self.cfg.set(key, value)
            # gunicorn >= 25 opens a control socket in $HOME, shared by every instance on the host.
            if "control_socket_disable" in self.cfg.settings:
                self.cfg.set("control_socket_disable", True)

        def load(self):
            app = create_app(settings)
            close_connections(app)  # before the fork: each worker opens its own
            # Garbage is collected between requests, not in the middle of parsing a large prefetch.
            return serve_without_automatic_collection(app)

    Server().run()
    return 0


# --------------------------------------------------------------------------------------- evaluate


def evaluate_command(args: argparse.Namespace) -> int:
    from cds_service.facts import PatientRecord, build_facts
    from cds_service.hooks.errors import ProtocolError
    from cds_service.hooks.request import hook_call
    from cds_service.services import SERVICES

    settings = Settings.from_env()
    document = _read_json(args.file)
    is_bundle = isinstance(document, dict) and document.get("resourceType") == "Bundle"
    if not is_bundle and not (isinstance(document, dict) and "hook" in document):
        raise CliError(f"{args.file}: neither a CDS Hooks request (no 'hook') nor a FHIR Bundle")
    hook = (args.hook or "patient-view") if is_bundle else document["hook"]
    if args.hook and hook != args.hook:
        raise CliError(f"--hook {args.hook} does not match the request's hook {hook!r}")
    service = next((s for s in SERVICES if s.hook == hook), None)
    if service is None:
        raise CliError(f"no service answers the hook {hook!r}")
    body = request_from_bundle(document, service) if is_bundle else document

    try:
        call = hook_call(service, body, settings, now=args.at)
    except ProtocolError as exc:
        raise CliError(f"the service refuses this request (HTTP {exc.status}): {exc.diagnostics}") from None
    cards = service.handler(call)
    record = PatientRecord.from_hook(call.context, call.prefetch, call.unavailable)
    facts = build_facts(record, call.policy, call.now)

    if args.json:
        output = {"facts": to_json(facts), "unavailable": dict(call.unavailable), "cards": cards}
        print(json.dumps(output, indent=2, ensure_ascii=False))
    else:
        print(f"{service.id} ({service.hook}), evaluated at {call.now.isoformat()}\n")
        print(format_facts(facts, call.unavailable))
        print()
        print(format_cards(cards))
    return 0


def request_from_bundle(bundle: Mapping[str, Any], service) -> dict:
    """A call of `service` carrying a patient Bundle as prefetch: each key gets what its query asks
    for; draft MedicationRequests become the draftOrders (all selected) of an order hook."""
    from cds_service.facts.record import bundle_resources
    from cds_service.hooks.prefetch import expected_type

    resources = [r for r in bundle_resources(bundle) if isinstance(r, dict)]
    patient = next((r for r in resources if r.get("resourceType") == "Patient"), None)
    if patient is None or not isinstance(patient.get("id"), str):
        raise CliError("the Bundle has no Patient with an id")
    drafts = [
        r for r in resources
        if r.get("resourceType") in ("MedicationRequest", "MedicationOrder") and r.get("status") == "draft"
    ]
    on_record = [r for r in resources if not any(r is d for d in drafts)]

    prefetch = {}
    for key, template in service.prefetch.items():
        kind = expected_type(template)
        if kind != "Bundle":
            prefetch[key] = next((r for r in on_record if r.get("resourceType") == kind), None)
            continue
        searched = template.split("?")[0].strip("/").split("/")[0]
        matches = [r for r in on_record if r.get("resourceType") == searched]
        prefetch[key] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(matches),
            "entry": [{"resource": r} for r in matches],
        }

    context: dict[str, Any] = {"userId": CLI_USER, "patientId": patient["id"]}
    if "draftOrders" in service.required_context:
        if not drafts:
            print("cds-service: note: the Bundle has no draft MedicationRequest", file=sys.stderr)
        context["draftOrders"] = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": d} for d in drafts],
        }
    if "selections" in service.required_context:
        context["selections"] = [f"{d['resourceType']}/{d.get('id')}" for d in drafts]
    return {"hook": service.hook, "hookInstance": "cds-service-cli", "context": context, "prefetch": prefetch}


def to_json(value: Any) -> Any:
    """Facts as JSON: dataclasses as objects (without the raw resources), dates as ISO strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value) if f.repr}
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (frozenset, set)):
        return sorted(to_json(v) for v in value)
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    return value


def format_facts(facts, unavailable: Mapping[str, str]) -> str:
    """The facts a card could rest on, as a clinician or pharmacist would check them."""
    from cds_service.facts.model import ANALYTE_UNITS

    lines = ["FACTS"]
    patient = facts.patient
    age = f"{patient.age_years} y" if patient.age_years is not None else "age unknown"
    born = f" (born {patient.birth_date.isoformat()})" if patient.birth_date else ""
    lines.append(f"Patient: {patient.id or '(no id)'}, {age}, {patient.sex}{born}")

    renal = facts.renal
    if renal is None:
        lines.append("Renal function: cannot be calculated (see data quality)")
    else:
        crcl = (f"CrCl {renal.crcl_ml_min:.0f} mL/min" if renal.crcl_ml_min is not None
                else f"CrCl per kg {renal.crcl_ml_min_per_kg:.2f} mL/min/kg only (no current weight)")
        lines.append(f"Renal function: {crcl} ({renal.method})")
        if renal.calculation:
            lines.append(f"  {renal.calculation}")
        lines.extend(f"  assumption: {a}" for a in renal.assumptions)
    if facts.dosing_weight is not None:
        weight = facts.dosing_weight
        lines.append(f"Dosing weight: {weight.kg:g} kg ({weight.basis}) {weight.calculation}".rstrip())

    lines.append("Labs (latest of each):")
    labs = [(a, facts.labs.latest(a)) for a in ANALYTE_UNITS if a in facts.labs.by_analyte]
    lines.extend(_indent(f"{analyte:<24} {m.describe()}" + _reported(m)) for analyte, m in labs if m)
    if not any(m for _, m in labs):
        lines.append("  (none)")

    lines.append("CMV viral load (newest first):")
    lines.extend(_indent(r.describe()) for r in facts.viral_load.results)
    for pp65 in facts.pp65:
        lines.append(_indent(f"pp65 {'positive' if pp65.positive else 'negative'} {pp65.reported}".rstrip()))
    if not facts.viral_load and not facts.pp65:
        lines.append("  (none)")

    conditions = facts.conditions
    lines.append("Conditions:")
    for label, values in (
        ("populations", conditions.populations),
        ("transplanted organs", conditions.transplant_organs),
        ("IBD", conditions.ibd_types),
        ("CMV disease sites", conditions.cmv_disease_sites),
        ("resistance mutations in", conditions.resistance_genes),
        ("documented resistant", conditions.resistant_drugs),
        ("allergies (cidofovir label)", conditions.allergies),
    ):
        if values:
            lines.append(f"  {label}: {', '.join(sorted(values))}")
    for flag, label in (
        (conditions.hsct_date, f"HSCT on {conditions.hsct_date}"),
        (conditions.chronic_gvhd, "chronic GVHD"),
        (conditions.cmv_infection, "CMV infection"),
        (conditions.ganciclovir_intolerance, "ganciclovir intolerance"),
        (conditions.ganciclovir_resistance, "ganciclovir resistance"),
        (conditions.renal_replacement, f"renal replacement therapy: {conditions.renal_replacement}"),
    ):
        if flag:
            lines.append(f"  {label}")
    lines.extend(_indent(f"{e.label}: {e.source_id} ({e.matched_by})") for e in conditions.evidence)

    lines.append("Medications on record:")
    lines.extend(_indent(f"{m.describe()} [{m.status or 'status?'}] {m.id}") for m in facts.medications)
    if not facts.medications:
        lines.append("  (none)")
    if facts.drafts:
        lines.append("Draft orders:")
        for draft in facts.drafts:
            selected = " (selected)" if draft.id in facts.selected else ""
            basis = f" = {draft.dose_basis}" if draft.dose_basis else ""
            lines.append(f"  {draft.describe()}{basis} {draft.id}{selected}")
            lines.extend(f"    problem: {p}" for p in draft.problems)

    if facts.quality or unavailable or facts.skipped_resources:
        lines.append("Data quality:")
        lines.extend(_indent(f"{q.kind} {q.item}: {q.detail}") for q in facts.quality)
        lines.extend(_indent(f"prefetch {key}: {why}") for key, why in unavailable.items())
        if facts.skipped_resources:
            lines.append(f"  {facts.skipped_resources} resources skipped (invalid or unusable)")
    return "\n".join(lines)


def _reported(measurement) -> str:
    canonical = f"{measurement.value:g} {measurement.unit}"
    if not measurement.reported or measurement.reported == canonical:
        return ""
    return f"  [reported {measurement.reported}]"


def _indent(text: str) -> str:
    return f"  {text}"


def format_cards(cards: list[dict]) -> str:
    if not cards:
        return "CARDS\n(none: nothing to say for this patient and orders)"
    rows = [
        (str(i), card.get("indicator", ""), ((card.get("source") or {}).get("topic") or {}).get("code", ""),
         card.get("summary", ""))
        for i, card in enumerate(cards, 1)
    ]
    lines = ["CARDS", *_table(("#", "Indicator", "Topic", "Summary"), rows), ""]
    for i, card in enumerate(cards, 1):
        lines.append(f"--- {i}. [{card.get('indicator')}] {card.get('summary')}")
        if card.get("detail"):
            lines.append(card["detail"])
        source = card.get("source") or {}
        lines.append(f"Source: {source.get('label', '')} {source.get('url', '')}".rstrip())
        for suggestion in card.get("suggestions", ()):
            recommended = " (recommended)" if suggestion.get("isRecommended") else ""
            lines.append(f"Suggestion: {suggestion.get('label')}{recommended}")
            # What accepting it does, action by action (a switch orders one drug and discontinues another).
            lines += [f"  - {a.get('type')}: {a.get('description')}" for a in suggestion.get("actions", ())]
        for link in card.get("links", ()):
            lines.append(f"Link: {link.get('label')} {link.get('url')}")
        lines.append("")
    return "\n".join(lines).rstrip()


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    rows = list(rows)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()

    return [line(header), line("-" * w for w in widths), *map(line, rows)]


# ---------------------------------------------------------------------------------- load-fixtures


def load_fixtures_command(args: argparse.Namespace) -> int:
    base = args.fhir_server.rstrip("/")
    paths = sorted(Path(args.dir).glob("*.json"))
    if not paths:
        raise CliError(f"no *.json Bundles in {args.dir}")
    failures = 0
    with requests.Session() as session:
        session.headers.update({"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"})
        for path in paths:
            bundle = _read_json(path)
            if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
                print(f"{path.name}: skipped (not a FHIR Bundle)")
                failures += 1
                continue
            try:
                message = load_bundle(session, base, bundle)
            except (requests.RequestException, CliError) as exc:
                message, failures = f"FAILED: {exc}", failures + 1
            print(f"{path.name}: {message}")
    print(f"{len(paths) - failures} of {len(paths)} bundles loaded into {base}")
    return 1 if failures else 0


def load_bundle(session: requests.Session, base: str, bundle: Mapping[str, Any]) -> str:
    """POST the Bundle as a transaction; if the server refuses, PUT (or POST) each resource."""
    if bundle.get("type") == "transaction":
        response = session.post(base, data=json.dumps(bundle), timeout=60, allow_redirects=False)
        problem = _not_written(response, TRANSACTION_RESPONSE)
        if problem is None:
            return f"transaction of {len(bundle.get('entry') or [])} entries"
        refused = f"transaction refused ({problem})"
    else:
        refused = f"not a transaction (type {bundle.get('type')!r})"
    resources = [e.get("resource") for e in bundle.get("entry") or [] if isinstance(e, dict)]
    resources = [r for r in resources if isinstance(r, dict) and r.get("resourceType")]
    # Patients first: servers that check references refuse an Observation of an unknown Patient.
    resources.sort(key=lambda r: r["resourceType"] != "Patient")
    for resource in resources:
        kind, rid = resource["resourceType"], resource.get("id")
        if rid:
            response = session.put(f"{base}/{kind}/{rid}", data=json.dumps(resource), timeout=30, allow_redirects=False)
        else:
            response = session.post(f"{base}/{kind}", data=json.dumps(resource), timeout=30, allow_redirects=False)
        problem = _not_written(response, kind)
        if problem is not None:
            raise CliError(f"{refused}; then {kind}/{rid or '(new)'} failed: {problem}")
    return f"{refused}; {len(resources)} resources written one by one"


TRANSACTION_RESPONSE = "transaction-response"


def _not_written(response: requests.Response, expected: str) -> str | None:
    """Why a FHIR server's answer is not a write (None when it is): not 2xx (a redirect to a login page is not
    followed), or a body that is not the FHIR answer (an HTML page; for a transaction, anything but a
    transaction-response Bundle).  `expected`: TRANSACTION_RESPONSE, or the resource type written, whose
    answer may also be empty (Prefer: return=minimal) or an OperationOutcome."""
    if not 200 <= response.status_code < 300:
        return f"HTTP {response.status_code}"
    if not response.content and expected != TRANSACTION_RESPONSE:
        return None
    try:
        body = response.json()
    except ValueError:
        body = None
    found = body.get("resourceType") if isinstance(body, dict) else None
    if expected == TRANSACTION_RESPONSE:
        written = found == "Bundle" and body.get("type") == TRANSACTION_RESPONSE
    else:
        written = found in (expected, "OperationOutcome")
    return None if written else f"HTTP {response.status_code}, but the answer is not a FHIR {expected}"


# -------------------------------------------------------------------------------- feedback-report


def feedback_report_command(args: argparse.Namespace) -> int:
    from cds_service.hooks.feedback import format_report, report
    from cds_service.hooks.storage import Database, StorageUnavailable

    settings = Settings.from_env()
    _existing_sqlite(settings.database_url)
    try:
        database = Database(settings.database_url)
        database.create_all()
        rows = report(database)
    except (StorageUnavailable, ValueError) as exc:
        raise CliError(f"database: {exc}") from None
    print(json.dumps(rows, indent=2) if args.json else format_report(rows))
    return 0


def _existing_sqlite(url: str) -> None:
    """A report reads the service's database: a SQLite file that is not there is a wrong CDS_DATABASE_URL (a
    typo would otherwise create an empty one and report "nothing yet"), never a database to create."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return  # Database() says what is wrong with it
    path = parsed.database or ""
    if parsed.get_backend_name() == "sqlite" and path not in ("", ":memory:") and not Path(path).expanduser().exists():
        raise CliError(f"no database at {path}: check CDS_DATABASE_URL (the service creates it when it starts)")


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise CliError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
