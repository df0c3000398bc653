"""A Python client generated from docs/openapi.json by openapi-python-client
(a standard generator, run by the test command), driving a live Cairn: sign
up and in, make a project and a thread, post a message and wait for the
agent's answer, then read the thread's events as the generated typed models
(one per event kind). Run by scripts/client_tests.py with the generated package
on the path; exits non-zero, naming the step, on the first failure.
"""

from __future__ import annotations

import sys

from cairn_client import AuthenticatedClient, Client
from cairn_client.api.auth import register, token
from cairn_client.api.projects import create_project
from cairn_client.api.threads import create_thread, events, post_message
from cairn_client.models import (
    CreateProjectRequest,
    EventResponseMessageCreated,
    EventResponseRunStatus,
    NewThreadRequest,
    PostMessageRequest,
    PostMessageResponse,
    ProjectResponse,
    RegisterRequest,
    ThreadResponse,
    TokenRequest,
    TokenResponse,
)

PASSWORD = "correct horse battery staple"


def main(base: str, expected: str) -> int:
    anonymous = Client(base_url=base, raise_on_unexpected_status=True)
    register.sync(client=anonymous, body=RegisterRequest(email="gen@example.com", password=PASSWORD, display_name="Gen"))
    signed_in = token.sync(client=anonymous, body=TokenRequest(grant_type="password", username="gen@example.com", password=PASSWORD))
    assert isinstance(signed_in, TokenResponse), f"sign-in: {signed_in}"
    client = AuthenticatedClient(base_url=base, token=signed_in.access_token, raise_on_unexpected_status=True, timeout=120)
    project = create_project.sync(client=client, body=CreateProjectRequest(name="Generated"))
    assert isinstance(project, ProjectResponse), f"project: {project}"
    thread = create_thread.sync(project_id=project.id, client=client, body=NewThreadRequest(title="Typed"))
    assert isinstance(thread, ThreadResponse), f"thread: {thread}"
    posted = post_message.sync(thread_id=thread.id, client=client, body=PostMessageRequest(content="What is 6 times 7?", wait=True))
    assert isinstance(posted, PostMessageResponse), f"post: {posted}"
    assert posted.answer == expected, f"the answer: {posted.answer!r}"
    logged = events.sync(thread_id=thread.id, client=client)
    assert isinstance(logged, list) and logged, f"events: {logged}"
    asked = [e for e in logged if isinstance(e, EventResponseMessageCreated)]
    assert asked and asked[0].payload.content == "What is 6 times 7?", f"the message as a typed event: {logged}"
    statuses = [e.payload.status.value for e in logged if isinstance(e, EventResponseRunStatus)]
    assert statuses[-1] == "succeeded", f"the run's statuses as typed events: {statuses}"
    print("generated Python client: sign-in, a project, a thread, a message answered, its events typed: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
