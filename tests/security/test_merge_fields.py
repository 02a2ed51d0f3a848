"""Merge-field and HTML injection: a lead whose name is a merge field (`{agent_password}`,
`{first_name}`) or markup (`<img src=x>`) renders literally in templates and in the workspace
HTML, and comes back unchanged from the server."""

from __future__ import annotations

import asyncio
from pathlib import Path

from app.domain.templates import merge_context, render
from tests.app.sync.live import Floor, LiveServer, wait_for
from tests.reliability.support import figures
from ui.workspace import render_lead_html

FIRST = "{agent_password}"
LAST = "<img src=x onerror=alert(1)>{first_name}"


def test_a_hostile_lead_name_renders_literally_everywhere(tmp_path: Path) -> None:
    live = LiveServer(tmp_path / "server.db")
    live.start()
    floor = Floor(live, tmp_path)

    async def main() -> None:
        workstation, _ = await floor.open("ana")
        try:
            lead_id = await asyncio.to_thread(live.post_lead, FIRST, LAST)
            await wait_for(lambda: workstation.store.repository.get_lead(lead_id) is not None, 10)
            lead = workstation.store.repository.get_lead(lead_id)
            assert lead is not None
            # The server kept it as text.
            assert lead.person.first_name == FIRST and lead.person.last_name == LAST
            # Templates: the value is inserted once, never parsed as a field again.
            context = merge_context(lead, workstation.dealership, "Ana", "+13125550100")
            text = render("Hi {first_name} {last_name}, this is {agent_name}.", context).text
            assert text == f"Hi {FIRST} {LAST}, this is Ana."
            # The workspace: markup shows as text.
            await wait_for(lambda: lead_id in workstation.queue, 10)
            html = render_lead_html(workstation.queue.detail(lead_id))
            assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
            assert FIRST in html
            figures("merge-field injection", surfaces=3, rendered_literally=3)
        finally:
            await floor.close_all()

    try:
        asyncio.run(main())
    finally:
        live.close()
