"""The web UI in headless Debian Chromium (Playwright): create a knowledge base, upload a DOCX and a PDF (and drop a
Markdown file), wait until they are indexed, ask, watch the streamed answer, open its sources, clear the KB.
Saves a screenshot under the test's temp dir; with TECORAG_UPDATE_SCREENSHOT=1 it also refreshes the README's
docs/screenshot.png."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest

from conftest import make_settings
from docgen import make_docx, make_pdf, require_cjk_font
from server_fixtures import running_server
from tecorag.server.app import create_app

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
REPO_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshot.png"
VIEWPORT = {"width": 1440, "height": 900}
TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip("Debian Chromium is not installed (apt-get install chromium)")
    settings = make_settings(tmp_path_factory.mktemp("webui") / "home")
    app = create_app(settings)
    with running_server(app) as url:
        yield url, app


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport=VIEWPORT, locale="zh-CN", device_scale_factor=1)
        tab = context.new_page()
        tab.set_default_timeout(TIMEOUT_MS)
        errors: list[str] = []
        tab.on("pageerror", lambda error: errors.append(str(error)))
        yield tab
        browser.close()
        assert not errors, f"JavaScript errors on the page: {errors}"


def make_documents(folder: Path) -> list[Path]:
    font = require_cjk_font()
    docx = make_docx(folder / "差旅制度.docx", "差旅管理办法", [
        "第一条 员工出差住宿标准为每晚不超过五百元，超出部分由个人承担。",
        "第二条 出差返回后十个工作日内提交报销单，逾期不予报销。",
        "第三条 乘坐高铁可报销二等座，乘坐飞机可报销经济舱。",
    ], subheading="住宿与报销")
    pdf = make_pdf(folder / "休假规定.pdf", [
        "休假规定\n本规定适用于全体正式员工。\n请假须提前在系统中提交申请，经直属主管审批。",
        "年休假\n员工工作满一年后，每年享有五天带薪年休假；工作满十年后，每年享有十天带薪年休假。",
    ], font=font)
    return [docx, pdf]


def test_create_upload_ask_and_open_a_source(server, page, tmp_path: Path):
    url, _ = server
    documents = make_documents(tmp_path)
    page.goto(url)
    page.wait_for_selector(".welcome")

    page.click("#kb-new")
    page.fill("#dialog input[name=name]", "员工手册")
    page.fill("#dialog input[name=info]", "差旅与休假制度")
    page.click("#dialog-ok")
    page.wait_for_function("document.querySelector('#kb-select').value === '员工手册'")
    assert "0 个文件" in page.inner_text("#kb-stats")

    # Two real documents through the file picker, a third one dropped onto the drop zone.
    page.set_input_files("#file-input", [str(path) for path in documents])
    dropped = page.evaluate_handle("""() => {
        const transfer = new DataTransfer();
        transfer.items.add(new File(['# 门禁管理\\n\\n访客须在前台登记并佩戴访客证，由接待员工全程陪同。'],
                                    '门禁.md', {type: 'text/markdown'}));
        transfer.items.add(new File(['%PDF-1.7 not really a pdf'], '损坏.pdf', {type: 'application/pdf'}));
        return transfer;
    }""")
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": dropped})
    page.wait_for_function("document.querySelectorAll('.upload-item[data-status=done]').length === 3"
                           " && document.querySelectorAll('.upload-item[data-status=failed]').length === 1",
                           timeout=TIMEOUT_MS)
    assert "损坏.pdf" in page.inner_text(".upload-item.failed .reason")
    page.wait_for_function("document.querySelectorAll('.file-item[data-status=indexed]').length === 3")
    broken = page.locator(".file-item[data-status=failed]")
    assert broken.count() == 1 and "损坏.pdf" in broken.locator(".file-error").inner_text()
    assert "4 个文件" in page.inner_text("#kb-stats")

    # Ask; the answer arrives as Server-Sent Events and is drawn as it streams.
    with page.expect_response("**/chat/knowledge_base_chat") as chat_response:
        page.fill("#question", "员工出差住宿标准是多少？")
        page.press("#question", "Enter")
    assert chat_response.value.headers["content-type"].startswith("text/event-stream")
    page.wait_for_function("""() => {
        const answers = document.querySelectorAll('.msg.assistant .answer-text');
        const last = answers[answers.length - 1];
        return last && !last.classList.contains('streaming') && last.textContent.includes('五百元');
    }""")

    page.click(".msg.assistant .sources-toggle")
    first_source = page.locator(".msg.assistant .source").first
    first_source.locator("summary").click()
    assert "差旅制度.docx" in first_source.locator(".where").inner_text()
    assert "五百元" in first_source.locator("blockquote").inner_text()

    # A second question, answered from the PDF: its source names the page.
    page.fill("#question", "工作满一年有几天年休假？")
    page.press("#question", "Enter")
    page.wait_for_function("""() => {
        const answers = document.querySelectorAll('.msg.assistant .answer-text');
        return answers.length === 2 && !answers[1].classList.contains('streaming')
            && answers[1].textContent.includes('五天');
    }""")
    second = page.locator(".msg.assistant").nth(1)
    second.locator(".sources-toggle").click()
    pdf_source = second.locator(".source").first
    pdf_source.locator("summary").click()
    assert "休假规定.pdf" in pdf_source.locator(".where").inner_text()
    assert "第 2 页" in pdf_source.locator(".where").inner_text()
    assert "五天" in pdf_source.locator("blockquote").inner_text()
    pdf_source.scroll_into_view_if_needed()

    page.wait_for_function("document.querySelectorAll('.toast').length === 0")
    screenshot = tmp_path / "webui.png"
    page.screenshot(path=str(screenshot))
    assert screenshot.stat().st_size > 20_000
    if os.environ.get("TECORAG_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(screenshot, REPO_SCREENSHOT)

    # The conversation survives a reload (kept per knowledge base in localStorage).
    page.reload()
    page.wait_for_function("document.querySelectorAll('.msg.assistant').length === 2")

    # Clearing asks first; cancelling keeps everything.
    page.click("#kb-clear")
    assert "不可恢复" in page.inner_text("#dialog-text")
    page.click("#dialog-cancel")
    assert page.locator(".file-item").count() == 4
    page.click("#kb-clear")
    page.click("#dialog-ok")
    page.wait_for_function("document.querySelectorAll('.file-item').length === 0")
    assert "0 个文件" in page.inner_text("#kb-stats")


def test_the_page_asks_for_an_api_key_and_keeps_it(server, page, tmp_path: Path):
    _, app = server
    settings = make_settings(tmp_path / "unused-home", server={"api_keys": ["secret-key"]})
    with running_server(create_app(settings, rag=app.state.tecorag.rag)) as guarded_url:
        created = httpx.post(f"{guarded_url}/knowledge_base/create_knowledge_base", headers={"X-API-Key": "secret-key"},
                             json={"knowledge_base_name": "门禁"})
        assert created.status_code == 200
        has_kb = "document.querySelector(\"#kb-select option[value='门禁']\") !== null"
        page.goto(guarded_url)
        page.wait_for_selector("#dialog[open]")
        assert "API key" in page.inner_text("#dialog-title")
        page.fill("#dialog input[name=key]", "secret-key")
        page.click("#dialog-ok")
        page.wait_for_function(has_kb)
        assert page.evaluate("localStorage.getItem('tecorag.apiKey')") == "secret-key"
        page.reload()
        page.wait_for_function(has_kb)
        assert page.locator("#dialog[open]").count() == 0
