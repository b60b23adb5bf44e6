"""The licence terms table: what each licence a model card names asks of a derivative, with its source.

Stated from the licence texts at the URLs given (hubscan cannot fetch them while it runs); each term
names the clause it comes from. Conservative on purpose: a term is listed only where the text plainly
carries it, and a licence missing here is "terms unknown", never "no terms".
"""

from __future__ import annotations

from dataclasses import dataclass

# Term kinds. All but NOTICE are restrictions a derivative's licence must not drop (see licences.py).
NON_COMMERCIAL = "non-commercial"
SHARE_ALIKE = "share-alike"
USE_POLICY = "use-policy"  # behavioural / acceptable-use restrictions that travel with the weights
ATTRIBUTION = "attribution"  # credit the licensor where the derivative is published
NAMING = "naming"  # the derivative's name must carry a prefix
USER_THRESHOLD = "user-threshold"  # a separate licence above some count of monthly active users
NOTICE = "notice"  # keep the licence text and copyright notice with copies
RESTRICTIONS = (NON_COMMERCIAL, SHARE_ALIKE, USE_POLICY, ATTRIBUTION, NAMING, USER_THRESHOLD)


@dataclass(frozen=True)
class Term:
    """One obligation of a licence and where its text says so."""

    kind: str
    detail: str
    source: str  # the licence text's URL and clause


@dataclass(frozen=True)
class Licence:
    """A licence as the Hub tags it, with its terms; ``name_prefix`` is the naming rule's prefix."""

    licence_id: str
    title: str
    url: str
    terms: tuple[Term, ...]
    name_prefix: str | None = None

    def kinds(self) -> frozenset[str]:
        """The kinds of term this licence carries."""
        return frozenset(t.kind for t in self.terms)

    def term(self, kind: str) -> Term | None:
        """The term of that kind, if the licence carries it."""
        return next((t for t in self.terms if t.kind == kind), None)


def _cc(licence_id: str, title: str, path: str, nc: bool, sa: bool) -> Licence:
    url = f"https://creativecommons.org/licenses/{path}/4.0/legalcode"
    terms = [Term(ATTRIBUTION, "identify the creator and indicate changes when sharing", f"{url} s.3(a)(1)")]
    if nc:
        terms.append(
            Term(NON_COMMERCIAL, "licensed rights for NonCommercial purposes only", f"{url} s.2(a)(1)")
        )
    if sa:
        terms.append(
            Term(SHARE_ALIKE, "adapted material under the same or a compatible licence", f"{url} s.3(b)")
        )
    return Licence(licence_id, title, url, tuple(terms))


def _llama3(licence_id: str, version: str, url: str, built_with: str, prefix: str) -> Licence:
    agreement = f"{url} (Llama {version} Community License Agreement)"
    return Licence(
        licence_id,
        f"Llama {version} Community License",
        url,
        (
            Term(
                ATTRIBUTION,
                f'prominently display "{built_with}" with a distributed derivative',
                f"{agreement} s.1.b.i",
            ),
            Term(
                NAMING,
                f'include "{prefix}" at the beginning of a distributed derived model\'s name',
                f"{agreement} s.1.b.i",
            ),
            Term(
                NOTICE,
                "distribute a copy of the agreement and its Notice text",
                f"{agreement} s.1.b.i, s.1.b.iii",
            ),
            Term(USE_POLICY, "the Acceptable Use Policy applies", f"{agreement} s.1.b.iv"),
            Term(
                USER_THRESHOLD,
                "over 700 million monthly active users needs a licence from Meta",
                f"{agreement} s.2",
            ),
        ),
        name_prefix=prefix,
    )


_OPENRAIL_USE = "the use-based restrictions must be passed on as an enforceable provision to every recipient"
_GEMMA = "https://ai.google.dev/gemma/terms"
_QWEN = "https://huggingface.co/Qwen/Qwen2.5-72B-Instruct/blob/main/LICENSE"
_TONGYI = "https://github.com/QwenLM/Qwen/blob/main/Tongyi%20Qianwen%20LICENSE%20AGREEMENT"

LICENCES: dict[str, Licence] = {
    lic.licence_id: lic
    for lic in (
        Licence(
            "apache-2.0",
            "Apache License 2.0",
            "https://www.apache.org/licenses/LICENSE-2.0",
            (
                Term(
                    NOTICE,
                    "give a copy of the licence, keep copyright and NOTICE attributions",
                    "https://www.apache.org/licenses/LICENSE-2.0 s.4(a)-(d)",
                ),
            ),
        ),
        Licence(
            "mit",
            "MIT License",
            "https://opensource.org/license/mit",
            (
                Term(
                    NOTICE,
                    "include the copyright and permission notice in copies",
                    "https://opensource.org/license/mit (second paragraph)",
                ),
            ),
        ),
        Licence(
            "bsd-3-clause",
            "BSD 3-Clause License",
            "https://opensource.org/license/bsd-3-clause",
            (
                Term(
                    NOTICE,
                    "retain the copyright notice and disclaimer",
                    "https://opensource.org/license/bsd-3-clause (conditions 1-2)",
                ),
            ),
        ),
        Licence(
            "cc0-1.0",
            "CC0 1.0 public domain dedication",
            "https://creativecommons.org/publicdomain/zero/1.0/legalcode",
            (),
        ),
        _cc("cc-by-4.0", "CC BY 4.0", "by", nc=False, sa=False),
        _cc("cc-by-sa-4.0", "CC BY-SA 4.0", "by-sa", nc=False, sa=True),
        _cc("cc-by-nc-4.0", "CC BY-NC 4.0", "by-nc", nc=True, sa=False),
        _cc("cc-by-nc-sa-4.0", "CC BY-NC-SA 4.0", "by-nc-sa", nc=True, sa=True),
        Licence(
            "llama2",
            "Llama 2 Community License",
            "https://ai.meta.com/llama/license/",
            (
                Term(
                    NOTICE,
                    "distribute a copy of the agreement and its Notice text",
                    "https://ai.meta.com/llama/license/ s.1.b.i, s.1.b.iii",
                ),
                Term(
                    USE_POLICY,
                    "the Acceptable Use Policy applies; no improving other LLMs with Llama 2 outputs",
                    "https://ai.meta.com/llama/license/ s.1.b.iv, s.1.b.v",
                ),
                Term(
                    USER_THRESHOLD,
                    "over 700 million monthly active users needs a licence from Meta",
                    "https://ai.meta.com/llama/license/ s.2",
                ),
            ),
        ),
        _llama3(
            "llama3", "3", "https://llama.meta.com/llama3/license/", "Built with Meta Llama 3", "Llama 3"
        ),
        _llama3("llama3.1", "3.1", "https://llama.meta.com/llama3_1/license/", "Built with Llama", "Llama"),
        _llama3("llama3.2", "3.2", "https://llama.meta.com/llama3_2/license/", "Built with Llama", "Llama"),
        _llama3("llama3.3", "3.3", "https://llama.meta.com/llama3_3/license/", "Built with Llama", "Llama"),
        Licence(
            "gemma",
            "Gemma Terms of Use",
            _GEMMA,
            (
                Term(
                    NOTICE,
                    'copy of the terms and a Notice file: "Gemma is provided under and subject to the '
                    'Gemma Terms of Use"; modified files marked as modified',
                    f"{_GEMMA} s.3.1",
                ),
                Term(
                    USE_POLICY,
                    "the Prohibited Use Policy applies and must be passed on to recipients",
                    f"{_GEMMA} s.3.1, s.3.2",
                ),
            ),
        ),
        Licence(
            "openrail",
            "Open RAIL",
            "https://www.licenses.ai/",
            (
                Term(
                    USE_POLICY,
                    _OPENRAIL_USE,
                    "https://www.licenses.ai/ (Open RAIL family: use-based restrictions)",
                ),
            ),
        ),
        Licence(
            "creativeml-openrail-m",
            "CreativeML Open RAIL-M",
            "https://huggingface.co/spaces/CompVis/stable-diffusion-license",
            (
                Term(
                    USE_POLICY,
                    _OPENRAIL_USE,
                    "https://huggingface.co/spaces/CompVis/stable-diffusion-license s.III.4, s.5, Attachment A",
                ),
                Term(
                    NOTICE,
                    "give a copy of the licence, mark modified files, keep notices",
                    "https://huggingface.co/spaces/CompVis/stable-diffusion-license s.III.4",
                ),
            ),
        ),
        Licence(
            "bigscience-openrail-m",
            "BigScience Open RAIL-M",
            "https://www.licenses.ai/blog/2022/8/26/bigscience-open-rail-m-license",
            (
                Term(
                    USE_POLICY,
                    _OPENRAIL_USE,
                    "https://www.licenses.ai/blog/2022/8/26/bigscience-open-rail-m-license s.III.4, s.5, Attachment A",
                ),
            ),
        ),
        Licence(
            "qwen",
            "Qwen License Agreement",
            _QWEN,
            (
                Term(
                    ATTRIBUTION,
                    'prominently display "Built with Qwen" or "Improved using Qwen" with a '
                    "distributed model trained or improved with the materials",
                    f"{_QWEN} (Redistribution clause)",
                ),
                Term(
                    NOTICE,
                    "distribute a copy of the agreement and its Notice text",
                    f"{_QWEN} (Redistribution clause)",
                ),
                Term(
                    USER_THRESHOLD,
                    "commercial use over 100 million monthly active users needs a licence from Alibaba Cloud",
                    f"{_QWEN} (clause on 100 million monthly active users)",
                ),
            ),
        ),
        Licence(
            "tongyi-qianwen",
            "Tongyi Qianwen License Agreement",
            _TONGYI,
            (
                Term(
                    NOTICE,
                    "distribute a copy of the agreement and its Notice text",
                    f"{_TONGYI} (Redistribution clause)",
                ),
                Term(
                    USER_THRESHOLD,
                    "commercial use over 100 million monthly active users needs a licence from Alibaba Cloud",
                    f"{_TONGYI} (clause on 100 million monthly active users)",
                ),
            ),
        ),
    )
}
