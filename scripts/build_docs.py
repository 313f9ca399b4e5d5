"""Build the documentation site and check the links between its pages.

    python scripts/build_docs.py                # render into site/ and check links (`make docs`)
    python scripts/build_docs.py --check-only   # check links, write nothing
    python scripts/build_docs.py --execute      # run each notebook before rendering it

The pages are the notebooks (`notebooks/*.ipynb`, rendered with nbconvert's HTML exporter), the
README and `docs/**/*.md` (rendered with mistune, which nbconvert already depends on). In the site,
links to `.ipynb` and `.md` pages point at their `.html`, and other repository files a page links to
(a fleet file, a module) are copied beside them, so the site works without the repository.

Notebooks are rendered with the outputs stored in them, not re-executed: CI runs every notebook
with nbval, which fails when a stored output differs from a fresh run, so the stored outputs are
proven current and `make docs` takes seconds instead of minutes. `--execute` is there for a site
built outside CI.

A link is broken when its target is not in the repository, lies outside it, or names an anchor
(`01_slices.ipynb#Placement`) that the target page has no heading for. External links (http,
mailto) are listed in the count but not fetched: the build runs offline.
"""

from __future__ import annotations

import argparse
import html
import re
import shutil
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
PAGE_SUFFIXES = (".ipynb", ".md")
EXTERNAL_SCHEMES = ("http", "https", "mailto", "data", "javascript", "ftp")
COPY_LIMIT_BYTES = 2_000_000
# Staging files merged into README.md by hand: their links are relative to the root, not to their
# folder. They are checked as if they stood at the root, and left out of the site.
STAGING = ("docs/README-sections.md",)


@dataclass(frozen=True)
class BrokenLink:
    page: str
    href: str
    reason: str

    def __str__(self) -> str:
        return f"{self.page}: link {self.href!r}: {self.reason}"


@dataclass(eq=False)
class Page:
    """One source file of the site and its rendered HTML."""

    source: Path
    html: str = ""
    title: str = ""
    ids: set[str] = field(default_factory=set)
    base: Path | None = None  # where its relative links start; default its own folder
    staging: bool = False

    @property
    def folder(self) -> Path:
        return self.base if self.base is not None else self.source.parent

    def rel(self, root: Path) -> str:
        return self.source.relative_to(root).as_posix()


@dataclass
class Report:
    pages: int
    links: int
    external: int
    broken: list[BrokenLink]
    copied: list[str]

    def summary(self) -> str:
        verdict = "no broken links" if not self.broken else f"{len(self.broken)} broken link(s)"
        return (
            f"{self.pages} pages, {self.links} links between them checked, "
            f"{self.external} external links not fetched: {verdict}"
        )


def find_pages(root: Path) -> list[Path]:
    """The notebooks, the README and docs/**/*.md, in reading order."""
    pages = sorted((root / "notebooks").glob("*.ipynb"))
    pages = [p for p in pages if ".ipynb_checkpoints" not in p.parts]
    readme = root / "README.md"
    if readme.is_file():
        pages.append(readme)
    pages += sorted(p for p in (root / "docs").rglob("*.md") if p.is_file()) if (root / "docs").is_dir() else []
    return [p for p in pages if p.relative_to(root).as_posix() not in STAGING]


def slug(text: str) -> str:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def structure_problems(path: Path) -> list[str]:
    """What a notebook of the guide lacks: it opens with what it teaches and ends with where to go next.

    The first cell must be Markdown with a `# Title`; the last Markdown cell must link to another
    notebook (`[...](NN_name.ipynb)`) or to the README. The tour is the exception to neither rule.
    """
    import nbformat

    nb = nbformat.read(path, as_version=4)
    problems = []
    first = nb.cells[0] if nb.cells else None
    if first is None or first.cell_type != "markdown" or not re.search(r"^#\s+\S", first.source, flags=re.MULTILINE):
        problems.append("the first cell is not Markdown with a '# Title' and what the notebook teaches")
    problems += _marker_problems(nb)
    markdown = [c for c in nb.cells if c.cell_type == "markdown"]
    last = markdown[-1].source if markdown else ""
    if not re.search(r"\]\((\.\./)?[^)#\s]*(\.ipynb|README\.md)(#[^)]*)?\)", last):
        problems.append("the last Markdown cell does not link to where to go next (another notebook or the README)")
    return problems


NBVAL_MARKERS = ("NBVAL_IGNORE_OUTPUT", "NBVAL_CHECK_OUTPUT", "NBVAL_RAISES_EXCEPTION", "NBVAL_SKIP")


def _marker_problems(nb: object) -> list[str]:
    """nbval honours a marker only when the comment is the marker alone: `# NBVAL_IGNORE_OUTPUT  (why)`
    is silently not a marker, and the cell's output is compared after all."""
    problems = []
    for number, cell in enumerate(nb.cells):  # type: ignore[attr-defined]
        if cell.cell_type != "code":
            continue
        for line in cell.source.splitlines():
            comment = line.strip().lstrip("#").strip()
            if line.strip().startswith("#") and comment.startswith("NBVAL") and comment not in NBVAL_MARKERS:
                problems.append(f"cell {number}: {line.strip()!r} is not a marker nbval knows; put the marker alone on its line")
    return problems


def _soup(markup: str):  # noqa: ANN202 - bs4 is imported lazily
    from bs4 import BeautifulSoup

    return BeautifulSoup(markup, "html.parser")


def render_notebook(path: Path, execute: bool = False, timeout_s: int = 600) -> tuple[str, str]:
    """HTML of a notebook (nbconvert's lab template) and its first heading."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(path, as_version=4)
    if execute:
        from nbclient import NotebookClient

        NotebookClient(nb, timeout=timeout_s, resources={"metadata": {"path": str(path.parent)}}).execute()
    with warnings.catch_warnings():
        # An output holding only a widget's view (no static form) renders as nothing; that is fine.
        warnings.filterwarnings("ignore", message="Your element with mimetype", category=UserWarning)
        body, _resources = HTMLExporter(template_name="lab").from_notebook_node(nb)
    title = path.stem
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^#+\s+(.+)$", cell.source, flags=re.MULTILINE)
            if match:
                title = match.group(1).strip()
                break
    return body, title


def render_markdown(path: Path) -> tuple[str, str]:
    """HTML of a Markdown file with GitHub-style ids on its headings, and its first heading."""
    import mistune

    body = mistune.html(path.read_text())
    soup = _soup(body)
    title = path.stem
    for heading in soup.find_all(re.compile(r"^h[1-6]$")):
        heading["id"] = slug(heading.get_text())
        if title == path.stem:
            title = heading.get_text().strip()
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body><main>{soup}</main></body></html>"
    )
    return page, title


def _ids(markup: str) -> set[str]:
    soup = _soup(markup)
    return {str(tag["id"]) for tag in soup.find_all(id=True)} | {str(tag["name"]) for tag in soup.find_all("a", attrs={"name": True})}


def _site_name(path: Path) -> Path:
    return path.with_suffix(".html") if path.suffix in PAGE_SUFFIXES else path


def check_and_rewrite(pages: list[Page], root: Path) -> tuple[Report, dict[Page, str], list[Path]]:
    """Check every relative link of every page; return the report, the rewritten HTML, files to copy."""
    by_source = {p.source.resolve(): p for p in pages}
    broken: list[BrokenLink] = []
    links = external = 0
    rewritten: dict[Page, str] = {}
    to_copy: list[Path] = []
    for page in pages:
        soup = _soup(page.html)
        for tag in soup.find_all(["a", "img"]):
            attr = "href" if tag.name == "a" else "src"
            href = tag.get(attr)
            if not href:
                continue
            href = str(href)
            parts = urlsplit(href)
            if parts.scheme in EXTERNAL_SCHEMES or href.startswith("//"):
                external += 1
                continue
            links += 1
            fragment = unquote(parts.fragment)
            # nbconvert writes non-ASCII heading ids percent-encoded; a browser matches either form.
            fragments = {parts.fragment, fragment}
            if not parts.path:  # "#anchor" on the same page
                if fragment and not fragments & page.ids:
                    broken.append(BrokenLink(page.rel(root), href, f"this page has no heading or id {fragment!r}"))
                continue
            if parts.path.startswith("/"):
                broken.append(BrokenLink(page.rel(root), href, "absolute paths break outside this machine; use a relative link"))
                continue
            target = (page.folder / unquote(parts.path)).resolve()
            try:
                target.relative_to(root.resolve())
            except ValueError:
                broken.append(BrokenLink(page.rel(root), href, f"{target} is outside the repository"))
                continue
            if not target.exists():
                broken.append(BrokenLink(page.rel(root), href, f"{target.relative_to(root.resolve()).as_posix()} does not exist"))
                continue
            linked = by_source.get(target)
            if linked is not None:
                if fragment and not fragments & linked.ids:
                    known = ", ".join(sorted(i for i in linked.ids if not i.startswith(("cell-id=", "jp-")))[:12])
                    broken.append(
                        BrokenLink(page.rel(root), href, f"{linked.rel(root)} has no heading {fragment!r}; its headings include: {known}")
                    )
                    continue
                new_path = _site_name(Path(parts.path)).as_posix()
                tag[attr] = new_path + (f"#{parts.fragment}" if parts.fragment else "")
            elif page.staging:
                continue
            elif target.is_file() and target.stat().st_size <= COPY_LIMIT_BYTES:
                to_copy.append(target)
            elif target.is_file():
                broken.append(BrokenLink(page.rel(root), href, f"{target.name} is over {COPY_LIMIT_BYTES:,} bytes; the site does not carry it"))
        rewritten[page] = str(soup)
    report = Report(pages=sum(not p.staging for p in pages), links=links, external=external, broken=broken, copied=[])
    return report, rewritten, to_copy


def _index(pages: list[Page], root: Path) -> str:
    items = "".join(
        f"<li><a href='{html.escape(_site_name(Path(p.rel(root))).as_posix())}'>{html.escape(p.title)}</a>"
        f" <code>{html.escape(p.rel(root))}</code></li>"
        for p in pages
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Workbench documentation</title></head>"
        f"<body><main><h1>Workbench documentation</h1><p>The notebooks are the documentation; CI runs each of them.</p>"
        f"<ul>{items}</ul></main></body></html>"
    )


def build(root: Path = ROOT, out: Path | None = None, *, execute: bool = False, write: bool = True) -> Report:
    """Render every page, check the links, and (when `write`) write the site into `out`."""
    root = root.resolve()
    out = (out or root / "site").resolve()
    pages = []
    for source in find_pages(root):
        markup, title = render_notebook(source, execute) if source.suffix == ".ipynb" else render_markdown(source)
        pages.append(Page(source=source, html=markup, title=title, ids=_ids(markup)))
    for rel in STAGING:
        if (root / rel).is_file():
            markup, title = render_markdown(root / rel)
            pages.append(Page(source=root / rel, html=markup, title=title, ids=_ids(markup), base=root, staging=True))
    report, rewritten, to_copy = check_and_rewrite(pages, root)
    pages = [p for p in pages if not p.staging]
    if not write:
        return report
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for page in pages:
        dest = out / _site_name(Path(page.rel(root)))
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(rewritten[page], encoding="utf-8")
    for source in sorted(set(to_copy)):
        rel = source.relative_to(root)
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, out / rel)
        report.copied.append(rel.as_posix())
    (out / "index.html").write_text(_index(pages, root), encoding="utf-8")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render the notebooks and docs to HTML and check the links between them.")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository (default: this script's)")
    parser.add_argument("--out", type=Path, default=None, help="where to write the site (default: <root>/site)")
    parser.add_argument("--execute", action="store_true", help="run each notebook before rendering it")
    parser.add_argument("--check-only", action="store_true", help="check the links; write nothing")
    args = parser.parse_args(argv)
    report = build(args.root, args.out, execute=args.execute, write=not args.check_only)
    for notebook in sorted((args.root / "notebooks").glob("*.ipynb")):
        for problem in structure_problems(notebook):
            print(f"note: {notebook.relative_to(args.root)}: {problem}")
    for link in report.broken:
        print(f"broken: {link}", file=sys.stderr)
    where = "" if args.check_only else f" -> {(args.out or args.root / 'site')}/index.html"
    print(report.summary() + where)
    return 1 if report.broken else 0


if __name__ == "__main__":
    sys.exit(main())
