"""Validates FHIR R4 Bundles with an independent validator: PyPI's fhir.resources
(pydantic models generated from the FHIR specification; its R4B Communication, Bundle,
Location and Attachment are R4's). Reads one Bundle as JSON on stdin; exits 0 and
prints "valid" when it validates, else prints why and exits 1.

On top of the models' structure and types, it checks what they leave to a
terminology server: the codes of the required bindings used here, and that every
contained resource is referenced (dom-3)."""
import json
import sys

from fhir.resources.R4B.bundle import Bundle

COMMUNICATION_STATUS = {
    "preparation", "in-progress", "not-done", "on-hold", "stopped", "completed",
    "entered-in-error", "unknown",
}
BUNDLE_TYPES = {
    "document", "message", "transaction", "transaction-response", "batch",
    "batch-response", "history", "searchset", "collection",
}
HTTP_VERBS = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"}


def fail(why):
    print("invalid: " + why)
    sys.exit(1)


raw = json.load(sys.stdin)
try:
    Bundle.model_validate(raw)
except Exception as e:  # the validator's own message says what and where
    fail(str(e))
if raw.get("type") not in BUNDLE_TYPES:
    fail("Bundle.type")
for i, entry in enumerate(raw.get("entry", [])):
    resource = entry.get("resource", {})
    if resource.get("resourceType") == "Communication":
        if resource.get("status") not in COMMUNICATION_STATUS:
            fail(f"entry {i}: Communication.status {resource.get('status')!r}")
        referenced = {
            p["contentReference"]["reference"]
            for p in resource.get("payload", [])
            if "contentReference" in p
        }
        for contained in resource.get("contained", []):
            if "#" + contained.get("id", "") not in referenced:
                fail(f"entry {i}: contained {contained.get('id')} is not referenced (dom-3)")
    request = entry.get("request")
    if raw["type"] == "transaction" and (not request or request.get("method") not in HTTP_VERBS):
        fail(f"entry {i}: a transaction entry needs request.method")
print("valid")
