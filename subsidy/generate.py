"""A realistic, seeded year of input messages for Chengdu, as JSONL.

One line per message: ``{"topic": "...", "value": {...}}``, or ``{"topic": "...", "raw": "..."}``
for a message whose bytes are not JSON. Lines are in order of ``occurred_at``, so a pipeline
fed the file in order never sees a claim later than its clause's allowed lateness.

The same seed and parameters always give a byte-identical file: everything comes from one
``random.Random(seed)``, no set or hash order is ever iterated, and timestamps are built
from integers.

What a year holds (default ``events=60000``, ``enterprises=1100``):

* compute purchases (≈55 % of the rest) by enterprises from a few dozen compute providers;
  amounts are card-hours × a price, heavy-tailed per buyer so some buyers reach the
  5,000,000 voucher cap and the 100,000,000 programme budget runs out late in the year;
* model invoices (≈45 %) from model vendors, monthly billing periods, heavy-tailed so some
  enterprises reach the 1,000,000 model-usage cap;
* refunds (``refund_of``) and credit notes (``credit_of``) of earlier events of the same
  source, never more than the original;
* investment closings (angel / vc / pe);
* award announcements for every award clause, with repeats of a subject, more than 20
  benchmark scenarios, and Wu Wenjun awards to persons (GB 11643 ids) and teams;
* ≈0.5 % invalid messages (bad USCC, fractional JSON number, missing field, unknown award,
  malformed JSON) and a few exact duplicates (redeliveries);
* with ``void_rate`` (``--void-rate``; none by default), operators' voids (``payment-voids``) of
  that share of purchases and invoices, 2 to 30 days after them, naming the payment the purchase's
  claim is paid with: a void of a claim that was declined, or clawed back whole, is rejected by
  decide, as it would be in production. None by default: operators void payments the ledger
  holds, after they were decided; a year published at once and decided partly in arrival order
  (a quiet pipeline) could decide a void before its payment and refuse it (decision 15).

With several programmes (issue 28: the city's and 成都高新区's), also: a quarter of the parties
registered in a later programme's divisions, that programme's award lists, and purchases and
invoices naming a ``project_ref``, some projects claimed twice (就高不重复). With one programme
the file is as before, byte for byte.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from rules.engine import instruction_id_of
from rules.identifiers import USCC_ALPHABET, resident_id_check_character, uscc_check_character
from rules.inputs import PAYMENT_VOIDS_TOPIC
from rules.intake import intake
from rules.money import format_fen, parse_amount
from rules.policy import Policy, load_policy

INVALID_KINDS = ("bad-uscc", "fractional-amount", "missing-field", "unknown-award", "malformed-json")

# 成都市 and its districts / counties (GB/T 2260); 510100 is used by the high-tech zone's registrations.
CHENGDU_REGIONS = (
    "510100", "510104", "510105", "510106", "510107", "510108", "510112", "510113", "510114",
    "510115", "510116", "510117", "510118", "510121", "510129", "510131", "510181", "510182",
    "510183", "510184", "510185",
)
OTHER_REGIONS = ("110108", "110105", "310115", "310104", "440305", "440306", "330106", "320106", "500112", "610131")
BRAND_CHARS = (
    "天府 锦城 蓉城 蜀汉 青羊 锦江 浣花 峨眉 岷江 芙蓉 西岭 龙泉 都江 天回 玉林 望江 金沙 武侯 "
    "星河 云帆 智海 数联 算界 深蓝 鲲鹏 灵犀 澄明 启明 极光 墨子 知行 未来 明镜 众合 远景 星辰 "
    "海纳 澜舟 千帆 卓越 宏图 长风 晨曦 博睿 睿思 慧眼 聚力 融创 鼎新 华章 新航 领航 弘毅 "
    "九章 格物 致知 凌云 瀚海 驰骋 拓维 锐视 恒信 谦益 昆仑 天工 开物 太白 青城 剑门 巴蜀 锦官"
).split()
ENTERPRISE_KINDS = (
    "智能科技", "人工智能科技", "数据科技", "信息技术", "智算科技", "网络科技", "软件技术", "机器人",
    "视觉科技", "医疗科技", "自动驾驶科技", "语言智能科技", "智能制造", "数字科技",
)
SURNAMES = "王 李 张 刘 陈 杨 黄 赵 吴 周 徐 孙 马 朱 胡 郭 何 高 林 罗 郑 梁 谢 宋 唐 许 韩 冯 邓 曹 彭 曾 肖 田 董 袁 潘 蒋 蔡 余".split()
GIVEN = "伟 芳 娜 敏 静 丽 强 磊 军 洋 勇 艳 杰 涛 明 超 秀 霞 平 刚 桂 文 华 建 国 志 红 玉 兰 晨 宇 浩 然 欣 怡 子 涵 博 思 睿 嘉 航 琪".split()
UNIVERSITIES = (("uestc", "电子科技大学"), ("scu", "四川大学"), ("swjtu", "西南交通大学"), ("swufe", "西南财经大学"), ("cuit", "成都信息工程大学"))
EXHIBITIONS = (
    "世界人工智能大会(WAIC)", "中国国际智能产业博览会", "CES", "汉诺威工业博览会", "世界互联网大会乌镇峰会",
    "中国国际服务贸易交易会", "GITEX Global", "MWC上海", "西博会人工智能展区", "中关村论坛技术交易大会",
)
RANKINGS = (
    "胡润全球独角兽榜", "福布斯中国人工智能科技企业TOP50", "CB Insights AI 100", "中国人工智能企业综合实力百强",
    "工信部人工智能产业创新任务揭榜优胜单位", "IDC中国AI大模型厂商评估领导者象限",
)
INVESTORS = (
    "天府天使投资基金", "成都科技创新投资集团", "成都高新投资集团", "交子资本", "红杉中国", "高瓴创投", "深创投",
    "启明创投", "IDG资本", "经纬创投", "君联资本", "四川发展引领资本", "成都产业投资集团", "蓉创投资", "元禾原点",
)
SCENARIOS = (
    "城市治理大模型", "智慧交通信号协同", "医学影像辅助诊断", "政务热线智能问答", "工业质检视觉", "电网巡检",
    "金融风控", "智慧农业病虫害识别", "文旅数字人导览", "中医药知识图谱", "矿山安全预警", "航空发动机故障预测",
    "轨道交通运维", "智慧园区能源调度", "法律文书生成", "教育个性化辅导", "供应链需求预测", "城市内涝预警",
    "消防隐患识别", "大熊猫种群监测", "白酒酿造工艺优化", "电子信息产线排程", "智慧药房", "生物医药分子筛选",
    "城市低空物流", "智慧社区养老", "客服语音质检", "建筑图纸审查",
)
PRODUCTS = ("熊猫AI助手", "蜀语大模型", "锦官智能体平台", "天府视觉一体机", "蓉e办数字人", "芙蓉写作助手", "峨眉代码大模型")
DATACENTRES = ("天府智算中心", "成都超算中心二期", "西部数据谷一号楼", "简阳东部新区算力中心", "双流航空港数据中心")
CASES = ("人工智能+制造典型案例", "人工智能赋能新型工业化典型应用案例", "智慧城市人工智能典型案例", "人工智能+医疗健康典型案例", "教育人工智能典型案例")
WU_WENJUN_GRADES = ("最高成就奖", "特等奖", "一等奖", "一等奖", "二等奖", "二等奖", "三等奖")
# the subsidy office's operators, and why a payment is withdrawn before it reaches its payee
OPERATORS = ("wang.fang", "li.na", "zhang.wei", "chen.jing", "liu.yang", "zhou.min")
VOID_REASONS = (
    "收款账户已销户（AC04），企业已注销，款项无法送达",
    "发票经税务机关核查已作废，补贴依据不成立",
    "审计发现同一笔费用已在其他渠道获得财政补贴，不得重复享受",
    "企业书面申请放弃本笔补贴",
    "收款账户户名与营业执照名称不符，多次更正未果",
)
GPU_PRICES_FEN = (850, 1200, 1650, 2500, 3200, 4800)  # per card-hour
MODEL_PRICES_FEN = (1, 2, 4, 8, 12, 16, 30)  # per 1,000 tokens


@dataclass(slots=True)
class Org:
    uscc: str
    name: str
    source: str = ""
    compute_weight: float = 0.0
    compute_scale: float = 0.0
    model_weight: float = 0.0
    model_scale: float = 0.0
    providers: list[int] = field(default_factory=list)
    vendors: list[int] = field(default_factory=list)


@dataclass(slots=True)
class _Event:
    at: int  # seconds since the year started, China Standard Time
    seq: int
    topic: str
    value: dict[str, Any] | None = None
    raw: str | None = None
    invalid: str | None = None  # the kind of invalid message this is, if it is one


def _org_code(rng: random.Random) -> str:
    """Nine characters of a GB 11714 organisation code, with its own check character."""
    body = "MA6" + "".join(rng.choice(USCC_ALPHABET[:10] if i < 2 else USCC_ALPHABET) for i in range(5))
    values = [int(c) if c.isdigit() else ord(c) - 55 for c in body]
    check = 11 - sum(v * w for v, w in zip(values, (3, 7, 9, 10, 5, 8, 4, 2))) % 11
    return body + ("X" if check == 10 else "0" if check == 11 else str(check))


def make_uscc(rng: random.Random, region: str) -> str:
    first17 = "91" + region + _org_code(rng)
    return first17 + uscc_check_character(first17)


def make_resident_id(rng: random.Random) -> str:
    region = rng.choice(CHENGDU_REGIONS[1:] + OTHER_REGIONS)
    year = rng.randint(1950, 1992)
    first17 = f"{region}{year}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}{rng.randint(0, 999):03d}"
    return first17 + resident_id_check_character(first17)


class _Names:
    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set()  # membership only, never iterated

    def unique(self, make) -> str:
        for _ in range(1000):
            name = make()
            if name not in self.used:
                self.used.add(name)
                return name
        raise RuntimeError("ran out of names")  # pragma: no cover


def _timestamp(year: int, at: int) -> str:
    days, rest = divmod(at, 86400)
    # plain date arithmetic: no time-zone library involved (the offset is fixed +08:00)
    day = dt.date(year, 1, 1) + dt.timedelta(days=days)
    hours, rest = divmod(rest, 3600)
    return f"{day.isoformat()}T{hours:02d}:{rest // 60:02d}:{rest % 60:02d}+08:00"


class YearGenerator:
    def __init__(self, year: int, seed: int, enterprises: int, events: int, policy: Policy, void_rate: float = 0.0):
        if enterprises < 30:
            raise ValueError("--enterprises must be at least 30")
        if events < 200:
            raise ValueError("--events must be at least 200")
        _refuse_days_outside_the_programme(year, policy)
        self.year, self.events, self.n_enterprises = year, events, enterprises
        self.policy, self.void_rate = policy, void_rate
        # the divisions the later programmes pay in (a district's), to register some parties there
        later = [p.registration_divisions.at(dt.date(year, 1, 1)) for p in policy.programmes[1:] if p.registration_divisions is not None]
        self.district_regions = tuple(sorted({d.ljust(6, "0") for divisions in later if divisions for d in divisions}))
        self.rng = random.Random(seed)
        self.names = _Names(self.rng)
        self.sources = {topic: sorted(names) for topic, names in policy.sources.items()}
        self.days = (dt.date(year + 1, 1, 1) - dt.date(year, 1, 1)).days
        weekday0 = dt.date(year, 1, 1).weekday()
        # demand grows through the year; weekends are quiet; public holidays are ignored
        weights = [(1.0 + 0.8 * d / self.days) * (0.35 if (weekday0 + d) % 7 >= 5 else 1.0) for d in range(self.days)]
        self.day_cum = list(_accumulate(weights))
        hour_w = [0.2] * 7 + [0.6, 1.5, 2.5, 2.5, 2.2, 1.2, 1.6, 2.4, 2.5, 2.3, 2.0, 1.2, 0.8, 0.7, 0.6, 0.4, 0.3]
        self.hour_cum = list(_accumulate(hour_w))
        self.seq = 0
        self.counters: dict[str, int] = {}
        self.out: list[_Event] = []

    # -- parties -------------------------------------------------------------------------

    def _company(self, region: str, kinds=ENTERPRISE_KINDS, city: str = "成都") -> Org:
        rng = self.rng
        name = self.names.unique(lambda: f"{city}{rng.choice(BRAND_CHARS)}{rng.choice(BRAND_CHARS)}{rng.choice(kinds)}有限公司")
        return Org(uscc=make_uscc(rng, region), name=name)

    def build_parties(self) -> None:
        rng = self.rng
        self.enterprises = [self._company(self._region()) for _ in range(self.n_enterprises)]
        cities = {"110108": "北京", "110105": "北京", "310115": "上海", "310104": "上海", "440305": "深圳", "440306": "深圳",
                  "330106": "杭州", "320106": "南京", "500112": "重庆", "610131": "西安"}
        compute_sources = self.sources["compute-purchases"]
        model_sources = self.sources["model-invoices"]
        self.providers = []
        for i in range(32):
            # compute vouchers pay the provider, and the city pays only enterprises registered in Chengdu
            region = self._region()
            org = self._company(region, ("云计算", "算力科技", "智算", "超算科技", "数据中心"), cities.get(region, "成都"))
            org.source = compute_sources[i % len(compute_sources)]
            self.providers.append(org)
        self.vendors = []
        for i in range(28):
            region = rng.choice(OTHER_REGIONS) if i % 4 else self._region()
            org = self._company(region, ("智能科技", "人工智能科技", "大模型科技", "智谱科技", "云计算"), cities.get(region, "成都"))
            org.source = model_sources[0] if i % 5 else model_sources[-1]
            self.vendors.append(org)
        # Heavy tails: a few enterprises buy most of the compute and most of the tokens.
        provider_pop = [rng.paretovariate(1.2) for _ in self.providers]
        vendor_pop = [rng.paretovariate(1.0) for _ in self.vendors]
        for org in self.enterprises:
            org.compute_weight = min(25.0, rng.paretovariate(1.2)) if rng.random() < 0.7 else 0.0
            org.compute_scale = math.exp(rng.gauss(0.0, 1.0)) * org.compute_weight ** 0.9
            org.model_weight = min(25.0, rng.paretovariate(1.25)) if rng.random() < 0.8 else 0.0
            org.model_scale = math.exp(rng.gauss(0.0, 0.7)) * org.model_weight ** 0.8
            org.providers = rng.choices(range(len(self.providers)), weights=provider_pop, k=rng.randint(1, 3))
            org.vendors = rng.choices(range(len(self.vendors)), weights=vendor_pop, k=rng.randint(1, 3))
        self.compute_buyers = [o for o in self.enterprises if o.compute_weight]
        self.compute_cum = list(_accumulate(o.compute_weight for o in self.compute_buyers))
        self.model_users = [o for o in self.enterprises if o.model_weight]
        self.model_cum = list(_accumulate(o.model_weight for o in self.model_users))

    # -- helpers -------------------------------------------------------------------------

    def _region(self) -> str:
        """A Chengdu registration division; with a district programme, a quarter in its divisions."""
        if self.district_regions and self.rng.random() < 0.25:
            return self.rng.choice(self.district_regions)
        return self.rng.choice(CHENGDU_REGIONS)

    def _when(self, after: int | None = None) -> int:
        rng = self.rng
        if after is not None:  # a follow-up: 1 to 40 days later, within the year
            return min(self.days * 86400 - 1, after + rng.randint(86400, 40 * 86400))
        day = rng.choices(range(self.days), cum_weights=self.day_cum)[0]
        hour = rng.choices(range(24), cum_weights=self.hour_cum)[0]
        return day * 86400 + hour * 3600 + rng.randrange(3600)

    def _event_id(self, source: str) -> str:
        n = self.counters.get(source, 0) + 1
        self.counters[source] = n
        prefix = "".join(part[0] for part in source.split("-")).upper()
        return f"{prefix}-{self.year}-{n:07d}"

    def _emit(self, at: int, topic: str, value: dict[str, Any] | None = None, raw: str | None = None) -> _Event:
        self.seq += 1
        event = _Event(at, self.seq, topic, value, raw)
        self.out.append(event)
        return event

    def _common(self, source: str, at: int, beneficiary: dict[str, str]) -> dict[str, Any]:
        return {"event_id": self._event_id(source), "source": source, "occurred_at": _timestamp(self.year, at), "beneficiary": beneficiary}

    @staticmethod
    def _ent(org: Org) -> dict[str, str]:
        return {"uscc": org.uscc, "name": org.name}

    # -- topics --------------------------------------------------------------------------

    def compute_purchase(self) -> _Event:
        rng = self.rng
        buyer = rng.choices(self.compute_buyers, cum_weights=self.compute_cum)[0]
        provider = self.providers[rng.choice(buyer.providers)]
        hours = max(1, int(2.6 * buyer.compute_scale * math.exp(rng.gauss(0.0, 1.1))))
        price = GPU_PRICES_FEN[min(len(GPU_PRICES_FEN) - 1, int(rng.random() * len(GPU_PRICES_FEN)))]
        cards = rng.choice((1, 1, 2, 4, 8, 8, 16))
        at = self._when()
        value = self._common(provider.source, at, self._ent(buyer))
        value.update(
            provider=self._ent(provider),
            invoice_no=f"CP{self.year}{provider.uscc[10:14]}{self.counters[provider.source]:08d}",
            amount=format_fen(hours * cards * price),
        )
        return self._emit(at, "compute-purchases", value)

    def model_invoice(self) -> _Event:
        rng = self.rng
        user = rng.choices(self.model_users, cum_weights=self.model_cum)[0]
        vendor = self.vendors[rng.choice(user.vendors)]
        kilotokens = max(10, int(6000 * user.model_scale * math.exp(rng.gauss(0.0, 1.0))))
        at = self._when()
        day = at // 86400
        month = (dt.date(self.year, 1, 1) + dt.timedelta(days=day)).month
        period = f"{self.year}-{month:02d}" if rng.random() < 0.6 or month == 1 else f"{self.year}-{month - 1:02d}"
        value = self._common(vendor.source, at, self._ent(user))
        value.update(
            vendor=self._ent(vendor),
            invoice_no=f"MI{self.year}{vendor.uscc[10:14]}{self.counters[vendor.source]:08d}",
            amount=format_fen(kilotokens * rng.choice(MODEL_PRICES_FEN)),
            billing_period=period,
        )
        return self._emit(at, "model-invoices", value)

    def correction(self, original: _Event) -> _Event:
        """A refund (compute) or credit note (model) of ``original``, same source, later."""
        rng = self.rng
        v = original.value
        assert v is not None
        source = v["source"]
        at = self._when(after=original.at)
        amount = parse_amount(v["amount"])
        refund = amount if rng.random() < 0.4 else max(1, amount * rng.randint(5, 95) // 100)
        value = self._common(source, at, dict(v["beneficiary"]))
        correction_field = "refund_of" if original.topic == "compute-purchases" else "credit_of"
        party = "provider" if original.topic == "compute-purchases" else "vendor"
        value[party] = dict(v[party])
        value["invoice_no"] = ("RF" if party == "provider" else "CN") + v["invoice_no"][2:]
        value["amount"] = format_fen(-refund if rng.random() < 0.3 else refund)
        if original.topic == "model-invoices":
            value["billing_period"] = v["billing_period"]
        value[correction_field] = v["event_id"]
        return self._emit(at, original.topic, value)

    def void(self, original: _Event) -> _Event | None:
        """An operator's void of the payment ``original`` is paid with (a clause it claims under,
        picked at random), 2 to 30 days later; None past the year's end."""
        rng = self.rng
        v = original.value
        assert v is not None
        at = original.at + rng.randint(2 * 86400, 30 * 86400)
        if at >= self.days * 86400:
            return None
        # the clauses and the payee are intake's: a void names what the pipeline pays
        claim = rng.choice(intake(original.topic, json.dumps(v, ensure_ascii=False).encode(), self.policy))
        payee = next(p for p in (v.get("provider"), v.get("vendor"), v["beneficiary"]) if p is not None and p["uscc"] == claim.payee["id"])
        instruction_id = instruction_id_of(self.policy, claim.clause_id, claim.source, claim.event_id)
        value = {
            "event_id": f"void-{instruction_id}", "source": self.sources[PAYMENT_VOIDS_TOPIC][0], "occurred_at": _timestamp(self.year, at),
            "payee": dict(payee), "payment": {"instruction_id": instruction_id, "clause_id": claim.clause_id, "source": claim.source, "event_id": claim.event_id},
            "operator": rng.choice(OPERATORS), "reason": rng.choice(VOID_REASONS),
        }
        return self._emit(at, PAYMENT_VOIDS_TOPIC, value)

    def investment(self) -> _Event:
        rng = self.rng
        org = rng.choice(self.enterprises)
        rnd = rng.choices(("angel", "vc", "pe"), weights=(5, 4, 1))[0]
        lo, hi = {"angel": (5, 60), "vc": (50, 1200), "pe": (500, 8000)}[rnd]
        amount = int(math.exp(rng.uniform(math.log(lo), math.log(hi)))) * 10_000_00  # whole 10,000s of yuan, in fen
        at = self._when()
        value = self._common("investment-registry", at, self._ent(org))
        value.update(
            round=rnd,
            amount=format_fen(amount),
            investors=sorted(rng.sample(INVESTORS, rng.randint(1, 3))),
            agreement_no=f"INV-{self.year}-{rng.randrange(10**6):06d}",
        )
        return self._emit(at, "investment-closings", value)

    def _person(self) -> dict[str, str]:
        rng = self.rng
        name = rng.choice(SURNAMES) + rng.choice(GIVEN) + (rng.choice(GIVEN) if rng.random() < 0.7 else "")
        return {"person_id": make_resident_id(rng), "name": name}

    def _team(self, n: int) -> dict[str, str]:
        code, uni = self.rng.choice(UNIVERSITIES)
        return {"team_ref": f"team/{code}-ai-{self.year}-{n:02d}", "name": f"{uni}人工智能创新团队{n}"}

    def awards(self) -> None:
        """A year of published lists: every award clause, with repeats and a full scenario quota."""
        rng = self.rng
        source = self.sources["award-announcements"][0]
        seq = iter(range(1, 10_000))
        ref = lambda: f"成新经济委〔{self.year}〕{next(seq)}号"  # noqa: E731

        def announce(award: str, beneficiary: dict[str, str], subject: str, at: int, **extra: Any) -> _Event:
            value = self._common(source, at, beneficiary)
            value.update(award=award, approval_ref=ref(), subject=subject, **extra)
            return self._emit(at, "award-announcements", value)

        def list_day(month: int) -> int:  # lists are published on one working morning
            return (sum(_month_days(self.year)[: month - 1]) + rng.randint(3, 24)) * 86400 + 10 * 3600

        ents = self.enterprises
        at = list_day(6)
        for i, dc in enumerate(DATACENTRES[:4]):
            announce("green-datacenter", self._ent(rng.choice(self.providers)), f"{dc}（国家绿色数据中心）", at + i * 60)
        first = self.out[-1].value
        assert first is not None
        # the same data centre announced again in a later list: pays once
        announce("green-datacenter", dict(first["beneficiary"]), first["subject"], list_day(11))

        at = list_day(9)
        scenarios = rng.sample(SCENARIOS, 24)  # more than the 20 a year the clause allows
        for i, name in enumerate(scenarios):
            base = rng.randint(60, 450) * 10_000_00 + rng.randrange(100) * 100
            announce("benchmark-scenario", self._ent(rng.choice(ents)), f"{self.year}年度标杆场景：{name}", at + i * 60, base_amount=format_fen(base))

        at = list_day(10)
        for i, grade in enumerate(WU_WENJUN_GRADES):
            beneficiary = self._person() if i % 2 == 0 else self._team(i)
            announce("wu-wenjun-award", beneficiary, f"{self.year}年度吴文俊人工智能科学技术奖{grade}：{beneficiary['name']}项目{i + 1}", at + i * 60, grade=grade)

        at = list_day(12)
        for i in range(3):
            beneficiary = self._person() if i != 1 else self._team(20 + i)
            announce("theory-breakthrough", beneficiary, f"人工智能基础理论突破{self.year}-{i + 1}", at + i * 60)

        at = list_day(5)
        exhibitors = rng.sample(ents, 8)
        shows = rng.sample(EXHIBITIONS, 4)
        for i, org in enumerate(exhibitors):
            show = shows[i % len(shows)]
            cost = rng.randint(30, 450) * 1000_00
            announce("exhibition", self._ent(org), f"{show} {self.year}", at + i * 60, base_amount=format_fen(cost))
        # the same enterprise at the same show, second booth: the per-show cap still holds
        announce("exhibition", self._ent(exhibitors[0]), f"{shows[0]} {self.year}", list_day(8), base_amount=format_fen(150_000_00))

        at = list_day(7)
        makers = rng.sample(ents, 5)
        for i, (org, product) in enumerate(zip(makers, rng.sample(PRODUCTS, 5))):
            announce("hit-product", self._ent(org), product, at + i * 60)
        announce("hit-product", self._ent(makers[0]), self.out[-5].value["subject"], list_day(12) + 3600)  # type: ignore[index]

        at = list_day(4)
        ranked = rng.sample(ents, 6)
        for i, org in enumerate(ranked):
            announce("ranking", self._ent(org), f"{rng.choice(RANKINGS)}（{self.year}）", at + i * 60)
        repeat = self.out[-6].value
        assert repeat is not None
        announce("ranking", dict(repeat["beneficiary"]), repeat["subject"], list_day(10) + 7200)

        at = list_day(11)
        cased = rng.sample(ents, 4)
        for i, (org, case) in enumerate(zip(cased, rng.sample(CASES, 4))):
            announce("typical-case", self._ent(org), f"{case}：{org.name[2:6]}方案", at + i * 60)
        repeat = self.out[-1].value
        assert repeat is not None
        announce("typical-case", dict(repeat["beneficiary"]), repeat["subject"], list_day(12) + 10800)

    def district_awards(self) -> None:
        """The later programmes' award lists (a scenario list of 成都高新区), the first entries the
        projects of city benchmark scenarios too: the same project under two programmes."""
        rng = self.rng
        city_scenarios = [e.value for e in self.out if e.value is not None and e.value.get("award") == "benchmark-scenario"]
        for programme in self.policy.programmes[1:]:
            sources = sorted(programme.sources.get("award-announcements", ()))
            for clause in programme.clauses.values():
                if clause.award is None or not sources or clause.entitlement.base != "base_amount":
                    continue
                at = (sum(_month_days(self.year)[:9]) + rng.randint(3, 24)) * 86400 + 10 * 3600
                for i, name in enumerate(rng.sample(SCENARIOS, 10)):
                    twin = city_scenarios[i] if i < 3 and i < len(city_scenarios) else None
                    beneficiary = dict(twin["beneficiary"]) if twin else self._ent(rng.choice(self.enterprises))
                    value = self._common(sources[0], at + i * 60, beneficiary)
                    base = rng.randint(60, 450) * 10_000_00
                    value.update(award=clause.award, approval_ref=f"成高管〔{self.year}〕{i + 1}号", subject=f"{self.year}年度{clause.title}：{name}",
                                 base_amount=format_fen(base))
                    if twin:
                        value["project_ref"] = twin["project_ref"] = f"SCN-{self.year}-{i + 1:03d}"
                    self._emit(at + i * 60, "award-announcements", value)

    def projects(self, claims: list[_Event]) -> None:
        """Name a project on some purchases and invoices, and claim a few of those projects again
        in a later purchase or invoice of the same beneficiary (any programme may pay it)."""
        rng = self.rng
        named = rng.sample(claims, max(4, len(claims) // 20))
        for n, event in enumerate(named, 1):
            assert event.value is not None
            event.value["project_ref"] = f"PRJ-{self.year}-{n:05d}"
        for original in named[: max(3, len(named) // 4)]:
            again = self.compute_purchase() if original.topic == "compute-purchases" else self.model_invoice()
            assert again.value is not None and original.value is not None
            again.at = max(again.at, original.at)
            again.value["occurred_at"] = _timestamp(self.year, again.at)
            again.value["beneficiary"] = dict(original.value["beneficiary"])
            again.value["project_ref"] = original.value["project_ref"]

    def invalid(self, kind: str) -> _Event:
        """One message that must be rejected at intake, of the given kind."""
        rng = self.rng
        base = self.compute_purchase() if kind != "unknown-award" else None
        if base is not None:
            self.out.pop()  # reuse its content, not its place
        if kind == "bad-uscc":
            v = base.value  # type: ignore[union-attr]
            uscc = v["beneficiary"]["uscc"]
            wrong = USCC_ALPHABET[(USCC_ALPHABET.index(uscc[-1]) + rng.randint(1, 30)) % 31]
            v["beneficiary"] = {"uscc": uscc[:-1] + wrong, "name": v["beneficiary"]["name"]}
        elif kind == "fractional-amount":
            base.value["amount"] = float(base.value["amount"]) + 0.25  # type: ignore[union-attr]
        elif kind == "missing-field":
            del base.value[rng.choice(("invoice_no", "provider", "amount"))]  # type: ignore[union-attr]
        elif kind == "unknown-award":
            at = self._when()
            value = self._common(self.sources["award-announcements"][0], at, self._ent(rng.choice(self.enterprises)))
            value.update(award="ai-olympiad", approval_ref=f"成新经济委〔{self.year}〕9{rng.randrange(1000):03d}号", subject="人工智能奥林匹克竞赛金奖")
            event = self._emit(at, "award-announcements", value)
        elif kind == "malformed-json":  # the billing system cut the message short
            text = json.dumps(base.value, ensure_ascii=False, separators=(",", ":"))  # type: ignore[union-attr]
            event = self._emit(base.at, "compute-purchases", raw=text[: rng.randint(20, len(text) - 5)])  # type: ignore[union-attr]
        else:
            raise ValueError(f"unknown invalid kind {kind!r}")
        if base is not None and kind != "malformed-json":
            self.out.append(base)
            event = base
        event.invalid = kind
        return event

    # -- the year ------------------------------------------------------------------------

    def build(self) -> list[_Event]:
        rng = self.rng
        self.build_parties()
        self.awards()
        n_awards = len(self.out)
        n = self.events
        n_invalid = max(len(INVALID_KINDS), round(n * 0.005))
        n_duplicates = max(3, n // 5000)
        n_invest = max(8, round(n * 0.006))
        n_corrections = round(n * 0.02)
        n_main = max(2, n - n_awards - n_invalid - n_duplicates - n_invest - n_corrections)
        n_compute = round(n_main * 0.55)
        purchases = [self.compute_purchase() for _ in range(n_compute)]
        invoices = [self.model_invoice() for _ in range(n_main - n_compute)]
        if self.policy.programmes:
            self.district_awards()
            self.projects(purchases + invoices)
        for _ in range(n_invest):
            self.investment()
        # corrections: at most one per original, for 60% compute refunds, 40% credit notes
        n_refunds = round(n_corrections * 0.6)
        for original in rng.sample(purchases, min(n_refunds, len(purchases))):
            self.correction(original)
        for original in rng.sample(invoices, min(n_corrections - n_refunds, len(invoices))):
            self.correction(original)
        for i in range(n_invalid):
            self.invalid(INVALID_KINDS[i % len(INVALID_KINDS)])
        valid = [e for e in self.out if e.invalid is None and e.topic in ("compute-purchases", "model-invoices")]
        for original in rng.sample(valid, n_duplicates):
            self._emit(original.at, original.topic, original.value)  # a redelivery: same bytes
        # last, so that the rest of the year is what it was before voids: the same lines, the same bytes
        if self.sources.get(PAYMENT_VOIDS_TOPIC):  # a policy file may let no one void
            originals = purchases + invoices
            for original in rng.sample(originals, round(len(originals) * self.void_rate)):
                self.void(original)
        self.out.sort(key=lambda e: (e.at, e.seq))
        return self.out


def _refuse_days_outside_the_programme(year: int, policy: Policy) -> None:
    """Generated events are claims to pay or decline: none may be rejected as outside a clause's window."""
    first, last = dt.date(year, 1, 1), dt.date(year, 12, 31)
    for clause in policy.clauses.values():
        ends = clause.ends.at(last) if clause.ends is not None else None
        if first < clause.starts or (ends is not None and last > ends):
            window = f"from {clause.starts}" + (f" to {ends}" if ends is not None else "")
            raise ValueError(f"--year {year} has days outside the programme window of {clause.id} ({window}, policy file); "
                             "pick a year wholly inside it")


def _accumulate(values) -> Iterator[float]:
    total = 0.0
    for v in values:
        total += v
        yield total


def _month_days(year: int) -> list[int]:
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]


def generate_lines(year: int, seed: int = 0, enterprises: int = 1100, events: int = 60000, policy: Policy | None = None,
                   void_rate: float = 0.0) -> Iterator[str]:
    """The JSONL lines (without newline) of a generated year; ``void_rate``: the share of purchases
    and invoices an operator voids."""
    generator = YearGenerator(year, seed, enterprises, events, policy or load_policy(), void_rate)
    for event in generator.build():
        if event.raw is not None:
            yield json.dumps({"topic": event.topic, "raw": event.raw}, ensure_ascii=False, separators=(",", ":"))
        else:
            yield json.dumps({"topic": event.topic, "value": event.value}, ensure_ascii=False, separators=(",", ":"))


def generate_file(path: str | Path, year: int, seed: int = 0, enterprises: int = 1100, events: int = 60000, policy: Policy | None = None,
                  void_rate: float = 0.0) -> int:
    """Write a generated year to ``path``; returns the number of lines."""
    count = 0
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        for line in generate_lines(year, seed, enterprises, events, policy, void_rate):
            out.write(line)
            out.write("\n")
            count += 1
    return count
