"""Every relative link of the README and docs/ leads somewhere: the file exists and, for a
``#fragment`` into a Markdown file, a heading (GitHub's anchor rule) or ``<a id>`` gives it."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} (.*)$")
HTML_ANCHOR = re.compile(r"<a (?:id|name)=\"([^\"]+)\"")


def github_slug(heading):
    """GitHub's heading anchor: lower case, punctuation dropped (hyphens and underscores kept), spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.replace("`", "").strip().lower()).replace(" ", "-")


def anchors(markdown):
    found, seen, in_code = set(HTML_ANCHOR.findall(markdown)), {}, False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        heading = None if in_code else HEADING.match(line)
        if heading:
            slug = github_slug(heading.group(1))
            found.add(f"{slug}-{seen[slug]}" if slug in seen else slug)  # GitHub numbers repeated headings
            seen[slug] = seen.get(slug, 0) + 1
    return found


def broken_links(doc):
    text = doc.read_text()
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, fragment = target.partition("#")
        linked = (doc.parent / path).resolve() if path else doc
        if not linked.exists():
            yield target, "no such file"
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked.read_text()):
            yield target, "no such heading"


def test_github_slug_follows_githubs_rule():
    assert github_slug("12. The same seed on another machine, and more (a measurement)") == (
        "12-the-same-seed-on-another-machine-and-more-a-measurement"
    )
    assert github_slug("At a glance: Hopper-v5, seeds 0–2 `swfp`") == "at-a-glance-hopper-v5-seeds-02-swfp"
    assert anchors("# A\n## A\n```\n# B\n```\n<a id=\"c\"></a>") == {"a", "a-1", "c"}


def test_readme_and_docs_links_resolve():
    broken = {f"{doc.relative_to(ROOT)}: {target}": why for doc in DOCS for target, why in broken_links(doc)}
    assert not broken, broken
