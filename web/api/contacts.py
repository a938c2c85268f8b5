"""``/api/v1/aliases/{id}/contacts``, ``/api/v1/contacts/{id}`` and the sender rules (issue 14)."""

from __future__ import annotations

from flask import Response, jsonify

from models import Alias
from web.api.blueprint import bp
from web.api.common import object_id, user
from web.api.contact_schemas import CONTACT, CONTACT_CREATE, CONTACT_LIST, CONTACT_UPDATE, RULE, RULE_CREATE, RULE_LIST
from web.api.operations import operation, request_body
from web.db import services, session
from web.services import aliases as alias_service
from web.services import contacts as service
from web.services import rules

ALIAS_ID = "<int:alias_id>"
CONTACT_ID = "<int:contact_id>"


def _alias(alias_id: int) -> Alias:
    return alias_service.owned(session(), user(), object_id(alias_id, "alias"))


@bp.get(f"/aliases/{ALIAS_ID}/contacts")
@operation("The alias's contacts, oldest first, with their reverse addresses.", 200, "They.", response=CONTACT_LIST)
def contacts_list(alias_id: int):
    return jsonify(CONTACT_LIST.dump(service.listed(services(), _alias(alias_id))))


@bp.post(f"/aliases/{ALIAS_ID}/contacts")
@operation(
    "Create a contact to write to first (or get the existing one).", 201, "It.", response=CONTACT, body=CONTACT_CREATE
)
def contacts_create(alias_id: int):
    alias = _alias(alias_id)
    data = request_body()
    contact = service.create(services(), session(), user(), alias, data["address"], data["name"] or "")
    return jsonify(CONTACT.dump(contact)), 201


@bp.patch(f"/contacts/{CONTACT_ID}")
@operation("Block or unblock a contact.", 200, "Changed.", response=CONTACT, body=CONTACT_UPDATE)
def contacts_update(contact_id: int):
    data = request_body()  # checked first: a bad body is a 400 whoever's contact it names
    alias = service.owned(session(), user(), object_id(contact_id, "contact"))
    return jsonify(CONTACT.dump(service.set_blocked(services(), alias, contact_id, data["blocked"])))


@bp.delete(f"/contacts/{CONTACT_ID}")
@operation("Delete a contact and its message links.", 204, "Done; no body.")
def contacts_delete(contact_id: int):
    alias = service.owned(session(), user(), object_id(contact_id, "contact"))
    service.delete(services(), alias, contact_id)
    return Response(status=204)


@bp.get(f"/aliases/{ALIAS_ID}/rules")
@operation("The alias's sender rules.", 200, "They.", response=RULE_LIST)
def rules_list(alias_id: int):
    return jsonify(RULE_LIST.dump(rules.listed(services(), user(), _alias(alias_id))))


@bp.post(f"/aliases/{ALIAS_ID}/rules")
@operation("Block or allow a sender for this alias.", 201, "Added.", response=RULE, errors=(409,), body=RULE_CREATE)
def rules_create(alias_id: int):
    alias = _alias(alias_id)
    data = request_body()
    rule = rules.add(services(), user(), alias, data["action"], data["kind"], data["value"] or "")
    return jsonify(RULE.dump(rule)), 201


@bp.delete("/rules/<int:rule_id>")
@operation("Remove a sender rule (an alias's or the account's).", 204, "Done; no body.")
def rules_delete(rule_id: int):
    rules.remove(services(), user(), object_id(rule_id, "rule"))
    return Response(status=204)


@bp.get("/rules")
@operation("The account's sender rules (they apply to every alias).", 200, "They.", response=RULE_LIST)
def account_rules_list():
    return jsonify(RULE_LIST.dump(rules.listed(services(), user(), None)))


@bp.post("/rules")
@operation(
    "Block or allow a sender for every alias of the account.", 201, "Added.", response=RULE, errors=(409,),
    body=RULE_CREATE,
)  # fmt: skip
def account_rules_create():
    data = request_body()
    rule = rules.add(services(), user(), None, data["action"], data["kind"], data["value"] or "")
    return jsonify(RULE.dump(rule)), 201
