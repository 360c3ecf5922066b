"""The client of the members' REST APIs, shared by the agent (its peers) and `haactl`.

Modules:
    client     RestClient: addresses, credentials, calls, a member's status
    status     MemberStatus: the `GET /patroni` document as one typed value
    transport  the transport seam: AiohttpTransport (real), MockTransport (tests)
"""

from haagent.rest_client.client import Authorization, Reply, RestClient, api_url_problem
from haagent.rest_client.status import BadStatus, LastDecision, MemberStatus, parse_status
from haagent.rest_client.transport import (
    AiohttpTransport,
    ApiUnreachable,
    Failure,
    HttpRequest,
    HttpResponse,
    MockTransport,
    Transport,
)

__all__ = [
    "AiohttpTransport",
    "ApiUnreachable",
    "Authorization",
    "BadStatus",
    "Failure",
    "HttpRequest",
    "HttpResponse",
    "LastDecision",
    "MemberStatus",
    "MockTransport",
    "Reply",
    "RestClient",
    "Transport",
    "api_url_problem",
    "parse_status",
]
