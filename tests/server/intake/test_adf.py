"""ADF intake: real-looking samples, the lenient quirks, the strict safety rules, a fuzz test."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.domain.errors import DomainError, InvalidLeadError
from app.domain.leads import (
    Address,
    Email,
    Lead,
    LeadSource,
    Person,
    SourceType,
    Timeframe,
    Vehicle,
    VehicleCondition,
    VehicleInterest,
)
from app.domain.phones import Phone, PhoneKind, TimeOfDay
from server.intake.adf import (
    AdfAmount,
    AdfError,
    AdfFinance,
    AdfId,
    AdfParseResult,
    AdfProblem,
    ProspectStatus,
    guess_source_type,
    parse_adf,
    split_full_name,
)

SAMPLES = Path(__file__).parent / "samples"
RECEIVED = datetime(2025, 3, 14, 17, 5, tzinfo=UTC)
STORE = "store-1"


def counting_ids() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"lead-{next(counter)}"


def parse(body: bytes, received_at: datetime = RECEIVED, **options: object) -> AdfParseResult:
    return parse_adf(
        body,
        received_at=received_at,
        store_id=STORE,
        new_id=counting_ids(),
        **options,  # type: ignore[arg-type]
    )


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def rejection(body: bytes, **options: object) -> list[str]:
    with pytest.raises(AdfError) as caught:
        parse(body, **options)
    return [str(problem) for problem in caught.value.problems]


def texts(problems: tuple[AdfProblem, ...]) -> list[str]:
    return [str(problem) for problem in problems]


def tz(hours: int) -> timezone:
    return timezone(timedelta(hours=hours))


# A small valid prospect the quirk tests vary.
REQUEST = "<requestdate>2025-03-14T09:00:00-07:00</requestdate>"
VEHICLE = "<vehicle><year>2024</year><make>Toyota</make><model>Camry</model></vehicle>"
CONTACT = (
    "<customer><contact><name part='full'>Ann Lee</name>"
    "<phone type='cellphone'>(425) 555-0100</phone></contact></customer>"
)
PROVIDER = "<provider><name>Cars.com</name></provider>"
PROSPECT = REQUEST + VEHICLE + CONTACT + PROVIDER
DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
ANN_CELL = Phone("(425) 555-0100", "+14255550100", PhoneKind.CELL)


def adf(inner: str = PROSPECT, *, prolog: str = DECLARATION, attrs: str = "") -> bytes:
    return f"{prolog}<adf><prospect{attrs}>{inner}</prospect></adf>".encode()


def with_contact(
    contact_inner: str, rest: str = "", *, name: str = "<name part='full'>Ann Lee</name>"
) -> bytes:
    """A prospect with Ann Lee's name, the given contact points, and Cars.com as provider."""
    customer = f"<customer><contact>{name}{contact_inner}</contact>{rest}</customer>"
    return adf(REQUEST + VEHICLE + customer + PROVIDER)


def only_lead(body: bytes, **options: object) -> Lead:
    result = parse(body, **options)
    assert len(result.prospects) == 1
    return result.prospects[0].lead


# --- the samples: every field, computed by hand -------------------------------------------------


def test_spec_example_with_adf_instruction_before_upper_case_declaration() -> None:
    received = datetime(2000, 3, 30, 23, 31, tzinfo=UTC)
    result = parse(sample("spec_example.xml"), received_at=received)

    assert result.encoding == "utf-8"
    assert result.warnings == ()
    (prospect,) = result.prospects
    assert prospect.index == 1
    assert prospect.status is ProspectStatus.NEW
    assert not prospect.is_resend
    assert prospect.requested_at == datetime(2000, 3, 30, 15, 30, 20, tzinfo=tz(-8))
    assert prospect.provider_name == "Carpoint"
    # The spec's own example has no <vendorname>: the vendor contact's name stands in.
    assert prospect.vendor_name == "Acura of Bellevue"
    assert prospect.ids == (
        AdfId("1234567", "Carpoint", "1", "prospect"),
        AdfId("98765", "Carpoint", "1", "vehicle[1]"),
    )
    assert prospect.comments == "Please call in the morning."
    assert prospect.finance == ()
    assert prospect.warnings == ()
    assert prospect.lead == Lead(
        id="lead-1",
        store_id=STORE,
        received_at=received,
        person=Person(first_name="John", last_name="Doe"),
        source=LeadSource("Carpoint", SourceType.THIRD_PARTY),
        phones=(
            Phone("(425) 555-0150", "+14255550150", PhoneKind.VOICE, TimeOfDay.MORNING),
            Phone("425-555-0151", "+14255550151", PhoneKind.FAX),
        ),
        emails=(Email("john.doe@example.com"),),
        address=Address("1 Microsoft Way", "Redmond", "WA", "98052", "US"),
        vehicles=(
            Vehicle(
                year=1999,
                make="Chevrolet",
                model="Blazer",
                trim="LT",
                vin="1GNDT13W0X2123456",
                stock_number="B4521",
                condition=VehicleCondition.USED,
                interest=VehicleInterest.BUY,
                odometer=90000,
                price=10000,
            ),
        ),
        timeframe=Timeframe("Within 1 month", 31),  # latestdate 2000-04-30, received 2000-03-30
        comments="Please call in the morning.",
    )
    assert prospect.lead.primary_phone == prospect.lead.phones[0]  # the fax is not dialed


def test_cars_com_lead() -> None:
    result = parse(sample("cars_com.xml"))

    (prospect,) = result.prospects
    comments = (
        "Hi, I'm interested in the 2021 Toyota RAV4 XLE you have listed for $27,995.\n"
        "Is it still available? Does it have a clean CARFAX & one owner?"
    )
    assert prospect.lead == Lead(
        id="lead-1",
        store_id=STORE,
        received_at=RECEIVED,
        person=Person(first_name="Danielle", last_name="Okafor"),
        source=LeadSource("Cars.com", SourceType.THIRD_PARTY),
        phones=(Phone("312.555.0188", "+13125550188", PhoneKind.CELL, TimeOfDay.EVENING),),
        emails=(Email("Danielle.Okafor@example.com", preferred=True),),
        address=Address(postal_code="60614", country="US"),
        vehicles=(
            Vehicle(
                year=2021,
                make="Toyota",
                model="RAV4",
                trim="XLE AWD",
                vin="2T3P1RFV5MW123456",
                stock_number="U21877",
                condition=VehicleCondition.USED,
                interest=VehicleInterest.BUY,
                odometer=38412,
                price=27995,
            ),
        ),
        comments=comments,
    )
    assert prospect.status is ProspectStatus.NEW
    assert prospect.requested_at == datetime(2025, 3, 14, 8, 47, 12, tzinfo=tz(-5))
    assert (prospect.provider_name, prospect.vendor_name) == ("Cars.com", "Lakeside Toyota")
    assert prospect.ids == (
        AdfId("CDC-2025-0314-88412", "Cars.com", "1", "prospect"),
        AdfId("LST-7712093", "Cars.com", "1", "vehicle[1]"),
        AdfId("DLR-40921", "Cars.com", "", "vendor"),
    )
    assert prospect.comments == comments
    assert prospect.warnings == ()


def test_autotrader_lead() -> None:
    (prospect,) = parse(sample("autotrader.xml")).prospects

    assert prospect.lead == Lead(
        id="lead-1",
        store_id=STORE,
        received_at=RECEIVED,
        person=Person(first_name="Mary", middle_name="Ann", last_name="O'Neil"),
        source=LeadSource("AutoTrader.com", SourceType.THIRD_PARTY),
        phones=(
            Phone("(503) 555-0147", "+15035550147", PhoneKind.VOICE, TimeOfDay.MORNING),
            Phone("+1 503 555 0148", "+15035550148", PhoneKind.CELL, TimeOfDay.AFTERNOON, True),
        ),
        emails=(Email("maryann.oneil@example.net"),),
        address=Address("4410 SE Hawthorne Blvd, Apt 12", "Portland", "OR", "97215", "US"),
        vehicles=(
            Vehicle(
                year=2025,
                make="Honda",
                model="CR-V Hybrid",
                trim="Sport-L",
                vin="7FARS6H87SE012345",
                stock_number="H25340",
                condition=VehicleCondition.NEW,
                interest=VehicleInterest.BUY,
                price=36900,  # the offer the shopper saw, not the MSRP listed first
            ),
        ),
        timeframe=Timeframe("Within 2 weeks", 14),  # latestdate 2025-03-28
        comments=(
            "I would like a price quote on this vehicle. Financing through you if the rate is good."
        ),
    )
    assert prospect.lead.primary_phone == prospect.lead.phones[1]  # preferredcontact="1"
    assert prospect.requested_at == datetime(2025, 3, 14, 10, 2, 55, tzinfo=tz(-7))
    assert (prospect.provider_name, prospect.vendor_name) == ("AutoTrader.com", "Rose City Honda")
    assert prospect.ids == (
        AdfId("ATC-5830021947", "AutoTrader.com", "1", "prospect"),
        AdfId("600123456", "AutoTrader.com", "", "vendor"),
    )
    assert prospect.warnings == ()


def test_dealer_website_lead_is_first_party() -> None:
    (prospect,) = parse(sample("dealer_website.xml")).prospects

    assert prospect.lead == Lead(
        id="lead-1",
        store_id=STORE,
        received_at=RECEIVED,
        person=Person(first_name="Luis", middle_name="Alberto", last_name="Ramírez"),
        source=LeadSource("Summit Ford Website", SourceType.FIRST_PARTY),
        phones=(Phone("720 555 0163", "+17205550163", PhoneKind.CELL, None, True),),
        emails=(Email("luis.ramirez@example.org"),),
        address=Address("812 Elm Street", "Golden", "CO", "80401", "US"),  # "Colorado" -> CO
        vehicles=(
            Vehicle(
                year=2025,
                make="Ford",
                model="Bronco Sport",
                trim="Badlands",
                stock_number="F25-1182",
                condition=VehicleCondition.NEW,
                interest=VehicleInterest.TEST_DRIVE,
                price=41285,
            ),
        ),
        timeframe=Timeframe("This week", 7),
        comments=(
            "Can I bring my own mechanic?\n\n"
            'About the 2025 Ford Bronco Sport Badlands: Customer selected "Schedule Test Drive" '
            "for Saturday 10:00 AM."
        ),
    )
    assert prospect.comments == "Can I bring my own mechanic?"
    assert prospect.requested_at == datetime(2025, 3, 14, 9, 15, tzinfo=tz(-6))
    assert prospect.ids == (AdfId("WEB-20250314-0193", "summitford.example", "1", "prospect"),)
    assert prospect.warnings == ()


def test_several_prospects_in_one_document() -> None:
    result = parse(sample("multi_prospect.xml"))

    first, second, third = result.prospects
    assert [p.index for p in result.prospects] == [1, 2, 3]
    assert [p.lead.id for p in result.prospects] == ["lead-1", "lead-2", "lead-3"]
    cargurus = LeadSource("CarGurus", SourceType.THIRD_PARTY)

    assert first.lead == Lead(
        id="lead-1",
        store_id=STORE,
        received_at=RECEIVED,
        person=Person(first_name="Priya", last_name="Natarajan"),
        source=cargurus,
        phones=(Phone("(617) 555-0172", "+16175550172", PhoneKind.CELL),),
        emails=(Email("priya.n@example.com"),),
        address=Address(postal_code="02139", country="US"),
        vehicles=(
            Vehicle(
                year=2019,
                make="Subaru",
                model="Outback",
                trim="2.5i Premium",
                vin="4S4BSAFC3K3123456",
                condition=VehicleCondition.USED,
                odometer=61020,
                price=21450,
            ),
        ),
    )
    assert texts(first.warnings) == [
        "prospect 1: ZIP '2139' has 4 digits; read as '02139' "
        "(at adf/prospect[1]/customer/contact/address/postalcode)"
    ]
    assert first.requested_at == datetime(2025, 3, 14, 7, 58, 3, tzinfo=tz(-4))

    assert second.lead == Lead(
        id="lead-2",
        store_id=STORE,
        received_at=RECEIVED,
        person=Person(
            first_name="Tom", last_name="Keane", business_name="Beacon Hill Florists LLC"
        ),
        source=cargurus,
        phones=(Phone("617-555-0190", "+16175550190", PhoneKind.VOICE),),
        vehicles=(
            Vehicle(
                year=2025,
                make="Subaru",
                model="Forester",
                condition=VehicleCondition.NEW,
                interest=VehicleInterest.LEASE,
            ),
        ),
        comments="Looking to lease two for the business.",
    )
    assert texts(second.warnings) == [
        "prospect 2: e-mail 'tom.keane@' is not a valid address; dropped "
        "(at adf/prospect[2]/customer/contact/email[1])"
    ]

    # A general question: no request date, no vehicle. Both allowed, both noted.
    assert third.lead == Lead(
        id="lead-3",
        store_id=STORE,
        received_at=RECEIVED,
        person=Person(first_name="Grace", last_name="Liu"),
        source=cargurus,
        emails=(Email("grace.liu@example.com"),),
        comments="Do you take trade-ins?",
    )
    assert third.requested_at == RECEIVED
    assert texts(third.warnings) == [
        "prospect 3: no <requestdate>; the time received is used (at adf/prospect[3]/requestdate)",
        "prospect 3: no vehicle of interest (at adf/prospect[3]/vehicle)",
    ]
    assert third.ids == (AdfId("CG-991203", "CarGurus", "1", "prospect"),)


def test_iso_8859_1_declared_reads_windows_quotes_too() -> None:
    body = sample("latin1.xml")
    assert "José".encode("latin-1") in body and b"\x92" in body  # the file really is 8-bit

    result = parse(body)

    assert result.encoding == "windows-1252"
    assert result.warnings == ()
    (prospect,) = result.prospects
    assert prospect.lead == Lead(
        id="lead-1",
        store_id=STORE,
        received_at=RECEIVED,
        person=Person(first_name="José", last_name="Muñoz"),
        source=LeadSource("Edmunds", SourceType.THIRD_PARTY),
        phones=(Phone("505 555 0134", "+15055550134", PhoneKind.CELL, TimeOfDay.AFTERNOON),),
        emails=(Email("jmunoz@example.com"),),
        address=Address("1402 Calle de Oñate", "Española", "NM", "87532", "US"),
        vehicles=(
            Vehicle(
                year=2023,
                make="Chevrolet",
                model="Silverado 1500",
                trim="LT Trail Boss",
                stock_number="P4410",
                condition=VehicleCondition.USED,
                odometer=18250,
                price=46800,
            ),
        ),
        comments="¿Está disponible? I’m ready to buy this weekend — cash.",
    )
    assert prospect.vendor_name == "Río Grande Chevrolet"
    assert prospect.requested_at == datetime(2025, 3, 14, 15, 20, tzinfo=UTC)


def test_trade_in_and_finance_block() -> None:
    (prospect,) = parse(sample("trade_in_finance.xml")).prospects

    assert prospect.lead == Lead(
        id="lead-1",
        store_id=STORE,
        received_at=RECEIVED,
        person=Person(first_name="Marcus", last_name="Whitfield"),
        source=LeadSource("Kelley Blue Book Instant Cash Offer", SourceType.THIRD_PARTY),
        phones=(Phone("(214) 555-0131", "+12145550131", PhoneKind.CELL, TimeOfDay.NO_PREFERENCE),),
        emails=(Email("m.whitfield@example.com"),),
        address=Address("2207 Ross Ave", "Dallas", "TX", "75201", "US"),
        vehicles=(
            Vehicle(
                year=2025,
                make="Hyundai",
                model="Tucson",
                trim="SEL",
                condition=VehicleCondition.NEW,
                interest=VehicleInterest.BUY,
                price=32650,
            ),
        ),
        trade_in=Vehicle(
            year=2017,
            make="Honda",
            model="Accord",
            trim="EX-L",
            vin="1HGCR2F86HA012345",
            condition=VehicleCondition.USED,
            interest=VehicleInterest.TRADE_IN,
            odometer=74875,  # 120,500 km / 1.609344 = 74,875.35 mi
            price=12500,
        ),
        timeframe=Timeframe("Within 30 days", 30),
        comments=(
            "Instant Cash Offer accepted online. Want to roll it into a new Tucson.\n\n"
            "About the trade-in (2017 Honda Accord EX-L): Minor scratch on rear bumper. Two keys."
        ),
    )
    assert prospect.finance == (
        AdfFinance(
            vehicle=1,
            method="finance",
            amounts=(
                AdfAmount("downpayment", "exact", 5000, "USD"),
                AdfAmount("monthly", "maximum", 450, "USD"),
            ),
        ),
        AdfFinance(
            vehicle=2,
            method="finance",
            amounts=(AdfAmount("monthly", "exact", 289, "USD"),),
            balance=8200,
        ),
    )
    assert prospect.ids == (AdfId("ICO-55120934", "KBB", "1", "prospect"),)
    assert prospect.warnings == ()


def test_resend_is_flagged() -> None:
    (prospect,) = parse(sample("resend.xml")).prospects

    assert prospect.status is ProspectStatus.RESEND
    assert prospect.is_resend
    assert prospect.requested_at == datetime(2025, 3, 13, 19, 44, 8, tzinfo=UTC)
    assert prospect.ids == (AdfId("TC-7781-3392", "TrueCar", "2", "prospect"),)
    assert prospect.lead == Lead(
        id="lead-1",
        store_id=STORE,
        received_at=RECEIVED,
        person=Person(first_name="Hannah", last_name="Brooks"),
        source=LeadSource("TrueCar", SourceType.THIRD_PARTY),
        emails=(Email("hannah.brooks@example.com"),),
        vehicles=(
            Vehicle(
                year=2025,
                make="Kia",
                model="Telluride",
                trim="SX X-Pro",
                condition=VehicleCondition.NEW,
                price=51990,
            ),
        ),
        timeframe=Timeframe("1-3 months", 90),
    )
    assert prospect.warnings == ()


def test_lead_ids_come_from_new_id_and_default_to_uuid4() -> None:
    result = parse_adf(adf(), received_at=RECEIVED, store_id=STORE)
    lead_id = result.prospects[0].lead.id
    assert len(lead_id) == 36 and lead_id[14] == "4"  # a version-4 UUID
    assert parse(adf()).prospects[0].lead.id == "lead-1"


# --- lenient: real-feed quirks -------------------------------------------------------------------


@pytest.mark.parametrize(
    "prolog",
    [
        '<?ADF VERSION "1.0"?>\n<?xml version="1.0"?>\n',
        '<?xml version="1.0"?>\n<?adf version="1.0"?>\n',
        '<?Adf Version="1.0"?><?XML VERSION "1.0"?>',
        '<?XML VERSION "1.0"?>\n',
        '<?xml version="1.0" encoding="UTF-8"?><?ADF VERSION "1.0"?>\n',
        '\n  <?adf version="1.0"?>\n',
        "",
    ],
)
def test_adf_instruction_and_odd_declarations_are_accepted(prolog: str) -> None:
    lead = only_lead(adf(prolog=prolog))
    assert lead.person == Person(first_name="Ann", last_name="Lee")
    assert lead.phones == (ANN_CELL,)


def test_adf_instruction_inside_the_document_is_dropped() -> None:
    body = adf(f'<?adf version="1.0"?>{PROSPECT}')
    assert only_lead(body).person.first_name == "Ann"


def test_unquoted_attribute_values() -> None:
    body = adf(
        "<id sequence=1 source=Cars.com>42</id>"
        + REQUEST
        + "<vehicle interest=test-drive status=used><make>Kia</make><model>Soul</model></vehicle>"
        + "<customer><contact><name part=first>Ann</name><name part=last>Lee</name>"
        + "<phone type=cellphone time=evening preferredcontact=1>(425) 555-0100</phone>"
        + "</contact></customer>",
        attrs=" status=resend",
    )
    (prospect,) = parse(body).prospects
    assert prospect.status is ProspectStatus.RESEND
    assert prospect.ids == (AdfId("42", "Cars.com", "1", "prospect"),)
    assert prospect.lead.person == Person(first_name="Ann", last_name="Lee")
    assert prospect.lead.phones == (
        Phone("(425) 555-0100", "+14255550100", PhoneKind.CELL, TimeOfDay.EVENING, True),
    )
    assert prospect.lead.vehicles == (
        Vehicle(
            make="Kia",
            model="Soul",
            condition=VehicleCondition.USED,
            interest=VehicleInterest.TEST_DRIVE,
        ),
    )
    # The source falls back to the <id source>.
    assert prospect.lead.source == LeadSource("Cars.com", SourceType.THIRD_PARTY)


def test_typographic_quotes_in_attributes() -> None:
    body = adf(
        REQUEST
        + "<vehicle interest=“trade-in” status=”used”><make>Kia</make><model>Soul</model></vehicle>"
        + "<customer><contact><name part=“first”>Ann</name><name part=”last”>Lee</name>"
        + "<phone type=‘cellphone’ time=’morning’>(425) 555-0100</phone></contact></customer>"
        + PROVIDER
    )
    (prospect,) = parse(body).prospects
    assert prospect.lead.person == Person(first_name="Ann", last_name="Lee")
    assert prospect.lead.phones == (
        Phone("(425) 555-0100", "+14255550100", PhoneKind.CELL, TimeOfDay.MORNING),
    )
    assert prospect.lead.trade_in == Vehicle(
        make="Kia",
        model="Soul",
        condition=VehicleCondition.USED,
        interest=VehicleInterest.TRADE_IN,
    )
    assert texts(prospect.warnings) == [
        "prospect 1: no vehicle of interest (at adf/prospect[1]/vehicle)"
    ]


def test_typographic_quotes_in_the_declaration() -> None:
    body = "<?xml version=“1.0” encoding=“ISO-8859-1”?><adf><prospect>".encode() + (
        PROSPECT.replace("Ann", "Zoë").encode("latin-1") + b"</prospect></adf>"
    )
    result = parse(body)
    assert result.encoding == "windows-1252"
    assert result.prospects[0].lead.person.first_name == "Zoë"


def test_element_and_attribute_names_in_mixed_case() -> None:
    body = (
        b"<ADF><Prospect STATUS='Resend'><RequestDate>2025-03-14T09:00:00Z</REQUESTDATE>"
        b"<Vehicle Interest='Buy' Status='NEW'><Year>2024</Year><Make>Mazda</Make>"
        b"<Model>CX-5</Model></vehicle>"
        b"<Customer><Contact><Name Part='First'>Ann</Name><Name Part='Last'>Lee</Name>"
        b"<Email PreferredContact='1'>Ann@Example.com</Email></Contact></Customer>"
        b"<Provider><Name>Edmunds</Name></Provider></Prospect></Adf>"
    )
    (prospect,) = parse(body).prospects
    assert prospect.status is ProspectStatus.RESEND
    assert prospect.requested_at == datetime(2025, 3, 14, 9, tzinfo=UTC)
    assert prospect.lead.person == Person(first_name="Ann", last_name="Lee")
    assert prospect.lead.emails == (Email("Ann@example.com", preferred=True),)
    assert prospect.lead.vehicles == (
        Vehicle(year=2024, make="Mazda", model="CX-5", condition=VehicleCondition.NEW),
    )
    assert prospect.lead.source == LeadSource("Edmunds", SourceType.THIRD_PARTY)


def test_utf8_byte_order_mark() -> None:
    body = b"\xef\xbb\xbf" + adf(PROSPECT.replace("Ann", "Zoë"))
    result = parse(body)
    assert result.encoding == "utf-8"
    assert result.prospects[0].lead.person.first_name == "Zoë"


def test_utf16_with_byte_order_mark() -> None:
    text = f'<?xml version="1.0" encoding="UTF-16"?><adf><prospect>{PROSPECT}</prospect></adf>'
    result = parse(text.replace("Ann", "Zoë").encode("utf-16"))
    assert result.encoding == "utf-16-le"
    assert result.prospects[0].lead.person.first_name == "Zoë"


def test_undeclared_latin1_bytes_are_read_as_windows_1252_with_a_warning() -> None:
    body = adf(PROSPECT.replace("Ann", "Zoë"), prolog="").replace("Zoë".encode(), b"Zo\xeb")
    result = parse(body)
    assert result.encoding == "utf-8+windows-1252"
    assert texts(result.warnings) == [
        "document: the body declares no encoding and is not valid UTF-8; "
        "bytes that are not UTF-8 were read as Windows-1252 (ISO-8859-1)"
    ]
    assert result.prospects[0].lead.person.first_name == "Zoë"


def test_undeclared_mixed_utf8_and_latin1_keeps_both_right() -> None:
    # A UTF-8 template ("Muñoz") with a Latin-1 field pasted in ("Zoë" as one byte 0xEB).
    inner = PROSPECT.replace("Ann Lee", "Zoë Muñoz")
    body = adf(inner, prolog="").replace("Zoë".encode(), b"Zo\xeb")
    lead = only_lead(body)
    assert lead.person == Person(first_name="Zoë", last_name="Muñoz")


def test_declared_us_ascii_with_8_bit_bytes_is_read_as_windows_1252() -> None:
    body = adf(prolog='<?xml version="1.0" encoding="us-ascii"?>').replace(b"Ann", b"Ren\xe9e")
    result = parse(body)
    assert result.encoding == "windows-1252"
    assert result.prospects[0].lead.person.first_name == "Renée"


def test_utf16_declared_on_an_ascii_body_is_read_as_utf8() -> None:
    result = parse(adf(prolog='<?xml version="1.0" encoding="UTF-16"?>'))
    assert result.encoding == "utf-8"
    assert texts(result.warnings) == [
        "document: the body declares UTF-16 but is not UTF-16; read as UTF-8"
    ]


@pytest.mark.parametrize(
    "raw",
    [
        "(425) 555-0100",
        "425.555.0100",
        "425 555 0100",
        "425-555-0100",
        "4255550100",
        "+1 425 555 0100",
        "1-425-555-0100",
        "+1 (425) 555-0100 ext. 12",
        "(425)555-0100",
    ],
)
def test_phones_in_every_punctuation_style(raw: str) -> None:
    lead = only_lead(with_contact(f"<phone type='cellphone'>{raw}</phone>"))
    assert lead.phones == (Phone(raw, "+14255550100", PhoneKind.CELL),)


def test_phone_whitespace_is_collapsed_and_duplicates_merged() -> None:
    lead = only_lead(
        with_contact(
            "<phone>\n   425  555\t0100 </phone><phone type='voice'>(425) 555-0100</phone>"
            "<phone type='fax'>206-555-0111</phone>"
        )
    )
    assert lead.phones == (
        Phone("425 555 0100", "+14255550100", PhoneKind.UNKNOWN),
        Phone("206-555-0111", "+12065550111", PhoneKind.FAX),
    )
    assert lead.text_phone == lead.phones[0]  # no type given: may be a cell


def test_bare_ampersand_html_entities_and_stray_less_than_in_text() -> None:
    body = adf(
        PROSPECT.replace(
            "</customer>",
            "<comments>Smith & Sons&nbsp;&copy; 2025 &amp; AT&T; budget <$20k <3</comments>"
            "</customer>",
        )
    )
    assert only_lead(body).comments == "Smith & Sons © 2025 & AT&T; budget <$20k <3"


def test_non_ascii_element_names_are_read_like_any_other() -> None:
    body = adf(PROSPECT.replace("</customer>", "<commentaire>A & B</commentaire></customer>"))
    body = body.replace(b"commentaire", "détail".encode())
    assert only_lead(body).person == Person(first_name="Ann", last_name="Lee")


def test_comments_and_cdata_are_left_alone() -> None:
    body = adf(
        "<!-- sent by LeadRouter 4.2 <b> & -->"
        + PROSPECT.replace(
            "</customer>", "<comments><![CDATA[Price <= $30k & <b>red</b>]]></comments></customer>"
        )
    )
    assert only_lead(body).comments == "Price <= $30k & <b>red</b>"


# --- strict: safety ------------------------------------------------------------------------------

DTD_REFUSED = (
    "document: a <!DOCTYPE> declaration was found; DTDs are refused because they enable "
    "entity-expansion and external-file attacks"
)


def test_xxe_external_entity_is_refused() -> None:
    body = (
        b'<?xml version="1.0"?>\n'
        b'<!DOCTYPE adf [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
        b"<adf><prospect>" + PROSPECT.encode() + b"<comments>&xxe;</comments></prospect></adf>"
    )
    assert rejection(body) == [DTD_REFUSED]


def test_doctype_with_system_file_is_refused() -> None:
    body = b'<!DOCTYPE adf SYSTEM "file:///etc/passwd"><adf><prospect/></adf>'
    assert rejection(body) == [DTD_REFUSED]


def test_external_dtd_is_refused_even_behind_an_adf_instruction() -> None:
    body = (
        b'<?ADF VERSION "1.0"?><?xml version="1.0"?>'
        b'<!DOCTYPE adf PUBLIC "-//ADF//DTD ADF 1.0//EN" "http://example.com/adf.dtd">'
        + adf(prolog="")
    )
    assert rejection(body) == [DTD_REFUSED]


def test_billion_laughs_is_refused() -> None:
    entities = ['<!ENTITY lol "lol">'] + [
        f'<!ENTITY lol{n} "{("&lol" + (str(n - 1) if n > 1 else "") + ";") * 10}">'
        for n in range(1, 10)
    ]
    body = (
        f'<?xml version="1.0"?><!DOCTYPE adf [{"".join(entities)}]>'
        f"<adf><prospect><customer><comments>&lol9;</comments></customer></prospect></adf>"
    ).encode()
    assert rejection(body) == [DTD_REFUSED]


def test_parameter_entity_is_refused() -> None:
    body = b'<!DOCTYPE adf [<!ENTITY % remote SYSTEM "http://example.com/x.dtd"> %remote;]><adf/>'
    assert rejection(body) == [DTD_REFUSED]


def test_undefined_entity_without_a_dtd_is_plain_text() -> None:
    # No DTD can define it, so "&xxe;" is just characters the customer typed.
    body = adf(PROSPECT.replace("</customer>", "<comments>&xxe;</comments></customer>"))
    assert only_lead(body).comments == "&xxe;"


def test_oversized_body_is_refused_before_parsing() -> None:
    body = adf(PROSPECT.replace("</customer>", f"<comments>{'x' * 3000}</comments></customer>"))
    assert rejection(body, max_bytes=2000) == [
        f"document: the body is {len(body)} bytes; the limit is 2000"
    ]
    # Garbage that would fail parsing reports the size: the limit is checked first.
    assert rejection(b"<" * 1_000_001) == [
        "document: the body is 1000001 bytes; the limit is 1000000"
    ]
    assert parse(body, max_bytes=len(body)).prospects[0].lead.comments == "x" * 3000


def test_deep_nesting_is_refused() -> None:
    body = b"<adf>" + b"<a>" * 500 + b"</a>" * 500 + b"</adf>"
    assert rejection(body) == ["document: elements are nested deeper than 50 levels"]
    assert rejection(adf(), max_depth=3) == ["document: elements are nested deeper than 3 levels"]


def test_invalid_utf8_when_declared_utf8_is_refused() -> None:
    body = adf().replace(b"Ann", b"A\xffnn")
    offset = body.index(b"\xff")
    assert rejection(body) == [
        f"document: the body declares UTF-8 but byte {offset} (0xFF) is not valid UTF-8"
    ]


def test_invalid_utf8_after_a_utf8_bom_is_refused() -> None:
    body = b"\xef\xbb\xbf" + adf(prolog="").replace(b"Ann", b"\xc3(nn")
    offset = body.index(b"\xc3")
    assert rejection(body) == [
        f"document: the body starts with a byte-order mark for UTF-8 but byte {offset} (0xC3) "
        "is not valid UTF-8"
    ]


def test_unsupported_encoding_is_refused() -> None:
    assert rejection(adf(prolog='<?xml version="1.0" encoding="Shift_JIS"?>')) == [
        "document: the encoding 'Shift_JIS' is not supported "
        "(use UTF-8, ISO-8859-1, Windows-1252 or ISO-8859-15)"
    ]


@pytest.mark.parametrize("body", [b"hello world", b'{"name": "Ann Lee"}', b"\x00\x01\x02"])
def test_not_xml_is_refused(body: bytes) -> None:
    assert rejection(body) == ["document: the body is not XML"]


@pytest.mark.parametrize("body", [b"", b"  \r\n\t "])
def test_empty_body_is_refused(body: bytes) -> None:
    assert rejection(body) == ["document: the body is empty"]


def test_not_well_formed_is_refused_naming_line_and_column() -> None:
    body = b"<adf>\n<prospect>\n<customer></prospect>\n</adf>"
    assert rejection(body) == ["document: not well-formed XML: mismatched tag: line 3, column 12"]


def test_junk_after_the_document_is_refused() -> None:
    body = adf() + b"<adf/>"
    column = len(body.splitlines()[1]) - len(b"<adf/>")
    assert rejection(body) == [
        f"document: not well-formed XML: junk after document element: line 2, column {column}"
    ]


def test_wrong_root_is_refused() -> None:
    assert rejection(b"<lead><prospect/></lead>") == [
        "document: the root element is <lead>; an ADF document starts with <adf> (at lead)"
    ]


def test_adf_without_prospects_is_refused() -> None:
    assert rejection(b"<?xml version='1.0'?><adf/>") == [
        "document: the <adf> element holds no <prospect> (at adf)"
    ]


def test_body_must_be_bytes() -> None:
    with pytest.raises(AdfError, match="the body must be bytes, not str"):
        parse_adf("<adf/>", received_at=RECEIVED, store_id=STORE)  # type: ignore[arg-type]


def test_naive_received_at_and_empty_store_are_programming_errors() -> None:
    with pytest.raises(InvalidLeadError, match="naive datetime"):
        parse_adf(adf(), received_at=datetime(2025, 3, 14, 12), store_id=STORE)
    with pytest.raises(InvalidLeadError, match="store_id"):
        parse_adf(adf(), received_at=RECEIVED, store_id="")
    with pytest.raises(DomainError, match=r"max_depth must be between 1 and 500 \(got 0\)"):
        parse_adf(adf(), received_at=RECEIVED, store_id=STORE, max_depth=0)


# --- per-prospect decisions ----------------------------------------------------------------------


def test_prospect_without_phone_or_email_rejects_the_whole_document() -> None:
    unreachable = (
        REQUEST + VEHICLE + "<customer><contact><name part='full'>Bo Diaz</name>"
        "<address><street>1 Main St</street></address></contact></customer>"
    )
    body = f"<adf><prospect>{PROSPECT}</prospect><prospect>{unreachable}</prospect></adf>"
    issued: list[str] = []

    def new_id() -> str:
        issued.append("x")
        return f"id-{len(issued)}"

    with pytest.raises(AdfError) as caught:
        parse_adf(body.encode(), received_at=RECEIVED, store_id=STORE, new_id=new_id)

    assert caught.value.problems == (
        AdfProblem(
            "no phone or e-mail to reach the customer", 2, "adf/prospect[2]/customer/contact"
        ),
    )
    assert (
        caught.value.problems[0].message == "prospect 2: no phone or e-mail to reach the customer"
    )
    assert str(caught.value) == (
        "ADF document rejected: prospect 2: no phone or e-mail to reach the customer "
        "(at adf/prospect[2]/customer/contact)"
    )


def test_every_unusable_prospect_is_named() -> None:
    fax_only = (
        REQUEST + "<customer><contact><phone type='fax'>206-555-0111</phone></contact></customer>"
    )
    bad_only = (
        REQUEST + "<customer><contact><phone>555-01</phone><email>bo@</email></contact></customer>"
    )
    no_customer = REQUEST + VEHICLE
    body = "".join(
        f"<prospect>{inner}</prospect>" for inner in (fax_only, PROSPECT, bad_only, no_customer)
    )
    assert rejection(f"<adf>{body}</adf>".encode()) == [
        "prospect 1: no phone or e-mail to reach the customer (unusable: fax '206-555-0111') "
        "(at adf/prospect[1]/customer/contact)",
        "prospect 3: no phone or e-mail to reach the customer "
        "(unusable: phone '555-01', e-mail 'bo@') (at adf/prospect[3]/customer/contact)",
        "prospect 4: no phone or e-mail to reach the customer (at adf/prospect[4]/customer)",
    ]


def test_invalid_phone_is_kept_as_unreachable_when_an_email_reaches_the_customer() -> None:
    (prospect,) = parse(
        with_contact("<phone>555-01</phone><email>ann@example.com</email>")
    ).prospects
    assert prospect.lead.phones == (Phone("555-01", None, PhoneKind.UNKNOWN),)
    assert prospect.lead.primary_email == Email("ann@example.com")
    assert texts(prospect.warnings) == [
        "prospect 1: phone '555-01' is not a valid number; kept as unreachable "
        "(at adf/prospect[1]/customer/contact/phone[1])",
    ]


def test_no_provider_and_no_id_source_gives_an_unknown_source() -> None:
    (prospect,) = parse(adf(REQUEST + VEHICLE + CONTACT)).prospects
    assert prospect.lead.source == LeadSource("Unknown ADF provider", SourceType.THIRD_PARTY)
    assert texts(prospect.warnings) == [
        "prospect 1: no provider name or <id source>; source recorded as 'Unknown ADF provider' "
        "(at adf/prospect[1]/provider)"
    ]


def test_email_is_normalized_deduplicated_and_invalid_ones_dropped() -> None:
    lead = only_lead(
        with_contact(
            "<phone>425-555-0100</phone><email>mailto:Ann.Lee@EXAMPLE.com</email>"
            "<email preferredcontact='1'>ann.lee@example.COM</email><email>not an email</email>"
        )
    )
    assert lead.emails == (Email("Ann.Lee@example.com"),)


@pytest.mark.parametrize(
    ("requestdate", "expected", "warning"),
    [
        ("2025-03-14T09:00:00-0700", datetime(2025, 3, 14, 9, tzinfo=tz(-7)), None),
        ("2025-03-14T16:00:00Z", datetime(2025, 3, 14, 16, tzinfo=UTC), None),
        (
            "03/14/2025 09:30 AM",
            datetime(2025, 3, 14, 9, 30, tzinfo=UTC),
            "requestdate '03/14/2025 09:30 AM' has no time zone; read in received_at's zone",
        ),
        (
            "yesterday",
            RECEIVED,
            "requestdate 'yesterday' is not a date and time; the time received is used",
        ),
        ("", RECEIVED, "no <requestdate>; the time received is used"),
    ],
)
def test_request_dates(requestdate: str, expected: datetime, warning: str | None) -> None:
    body = adf(f"<requestdate>{requestdate}</requestdate>{VEHICLE}{CONTACT}{PROVIDER}")
    (prospect,) = parse(body).prospects
    assert prospect.requested_at == expected
    assert [w.what for w in prospect.warnings] == ([warning] if warning else [])


def test_sell_becomes_the_trade_in_and_a_second_trade_in_is_named() -> None:
    vehicles = (
        VEHICLE
        + "<vehicle interest='sell' status='used'><year>2015</year><make>Ford</make>"
        + "<model>F-150</model></vehicle>"
        + "<vehicle interest='trade-in'><year>2012</year><make>Honda</make><model>Fit</model>"
        + "</vehicle>"
    )
    (prospect,) = parse(adf(REQUEST + vehicles + CONTACT + PROVIDER)).prospects
    assert prospect.lead.vehicles == (Vehicle(year=2024, make="Toyota", model="Camry"),)
    assert prospect.lead.trade_in == Vehicle(
        year=2015,
        make="Ford",
        model="F-150",
        condition=VehicleCondition.USED,
        interest=VehicleInterest.TRADE_IN,
    )
    assert [w.what for w in prospect.warnings] == [
        "the customer wants to sell the 2015 Ford F-150; recorded as the trade-in",
        "a second trade-in (2012 Honda Fit) was not kept: a lead holds one trade-in",
    ]


def test_odd_vehicle_values_degrade_with_warnings() -> None:
    vehicle = (
        "<vehicle interest='window-shopping' status='demo'><year>199</year><make>Jeep</make>"
        "<model>Wrangler</model><vin>1c4-hjxdg 1pw123456</vin><odometer>lots</odometer>"
        "<price type='call'>Call for price</price><price>$34,999.50</price></vehicle>"
    )
    (prospect,) = parse(adf(REQUEST + vehicle + CONTACT + PROVIDER)).prospects
    assert prospect.lead.vehicles == (
        Vehicle(
            make="Jeep",
            model="Wrangler",
            vin="1C4HJXDG1PW123456",
            price=35000,  # $34,999.50 rounds half up to whole dollars
        ),
    )
    assert [w.what for w in prospect.warnings] == [
        "vehicle interest 'window-shopping' is not an ADF interest; read as buy",
        "vehicle status 'demo' is not new or used; read as unknown",
        "year '199' is not a model year; dropped",
        "odometer 'lots' is not a reading; dropped",
        "price 'Call for price' is not an amount; ignored",
    ]


def test_short_vin_is_kept_with_a_warning() -> None:
    vehicle = "<vehicle><make>Ford</make><model>Mustang</model><vin>7F01C100001</vin></vehicle>"
    (prospect,) = parse(adf(REQUEST + vehicle + CONTACT + PROVIDER)).prospects
    assert prospect.lead.vehicles[0].vin == "7F01C100001"
    assert [w.what for w in prospect.warnings] == [
        "VIN '7F01C100001' is not a 17-character VIN; kept as given"
    ]


@pytest.mark.parametrize(
    ("address", "expected", "warnings"),
    [
        (
            "<street>10 Oak Ln</street><street>Building B</street><apartment>Unit 4</apartment>"
            "<city>Austin</city><regioncode>Texas</regioncode><postalcode>78701-1234</postalcode>",
            Address("10 Oak Ln, Building B, Unit 4", "Austin", "TX", "78701", "US"),
            [],
        ),
        (
            "<regioncode>ZZ</regioncode><postalcode>ABCDE</postalcode>",
            Address(),
            [
                "region 'ZZ' is not a US state; dropped",
                "postal code 'ABCDE' is not a US ZIP code; dropped",
            ],
        ),
        (
            "<city>Toronto</city><regioncode>ON</regioncode><postalcode>m5v 2t6</postalcode>"
            "<country>Canada</country>",
            Address(city="Toronto", state="ON", postal_code="M5V 2T6", country="CA"),
            [],
        ),
        ("<postalcode>123456789</postalcode>", Address(postal_code="12345"), []),
    ],
)
def test_addresses(address: str, expected: Address, warnings: list[str]) -> None:
    (prospect,) = parse(
        with_contact(f"<phone>425-555-0100</phone><address>{address}</address>")
    ).prospects
    assert prospect.lead.address == expected
    assert [w.what for w in prospect.warnings] == warnings


@pytest.mark.parametrize(
    ("timeframe", "within_days"),
    [
        ("<description>Within 24 hours</description>", 1),
        ("<description>In the next 2 weeks</description>", 14),
        ("<description>within a month</description>", 30),
        ("<description>1-3 months</description>", 90),
        ("<description>3 to 6 Months</description>", 180),
        ("<description>ASAP</description>", 0),
        ("<description>This month</description>", 30),
        ("<description>Just browsing</description>", None),
        ("<description>Within a week</description><latestdate>2025-03-24</latestdate>", 10),
        ("<earliestdate>2025-03-20</earliestdate>", 6),
        ("<latestdate>2025-03-01</latestdate>", 0),  # already past
        # 01:00 on the 15th at -08:00 is still the 15th in UTC (received_at's zone): one day.
        ("<latestdate>2025-03-15T01:00:00-08:00</latestdate>", 1),
    ],
)
def test_timeframe_within_days(timeframe: str, within_days: int | None) -> None:
    lead = only_lead(
        with_contact("<phone>425-555-0100</phone>", f"<timeframe>{timeframe}</timeframe>")
    )
    assert lead.timeframe.within_days == within_days


def test_unreadable_timeframe_date_is_ignored_with_a_warning() -> None:
    body = with_contact(
        "<phone>425-555-0100</phone>",
        "<timeframe><description>Soon</description>"
        "<latestdate>next spring</latestdate></timeframe>",
    )
    (prospect,) = parse(body).prospects
    assert prospect.lead.timeframe == Timeframe("Soon", None)
    assert "latestdate 'next spring' is not a date; ignored" in [w.what for w in prospect.warnings]


@pytest.mark.parametrize(
    ("full", "expected"),
    [
        ("John Doe", ("John", "", "Doe")),
        ("  Mary   Ann  O'Neil ", ("Mary", "Ann", "O'Neil")),
        ("Mr. John Q. Public Jr.", ("John", "Q.", "Public Jr.")),
        ("Smith, John", ("John", "", "Smith")),
        ("Smith, John Q", ("John", "Q", "Smith")),
        ("Ana Maria de la Cruz", ("Ana", "Maria", "de la Cruz")),
        ("Ludwig van Beethoven", ("Ludwig", "", "van Beethoven")),
        ("Martin Luther King, Jr.", ("Martin", "Luther", "King Jr.")),
        ("Madonna", ("Madonna", "", "")),
        ("Dr. Who", ("Who", "", "")),
        ("", ("", "", "")),
    ],
)
def test_split_full_name(full: str, expected: tuple[str, str, str]) -> None:
    assert split_full_name(full) == expected


def test_unknown_name_part_and_missing_name() -> None:
    (prospect,) = parse(
        with_contact("<phone>425-555-0100</phone>", name="<name part='nickname'>Bud Smith</name>")
    ).prospects
    assert prospect.lead.person == Person(first_name="Bud", last_name="Smith")
    assert prospect.warnings[0].what == "name part 'nickname' is not an ADF part; read as full"

    (nameless,) = parse(with_contact("<phone>425-555-0100</phone>", name="")).prospects
    assert nameless.lead.person == Person()
    assert nameless.warnings[0].what == "no customer name"


@pytest.mark.parametrize(
    ("provider", "vendor", "expected"),
    [
        ("Cars.com", "Lakeside Toyota", SourceType.THIRD_PARTY),
        ("AutoTrader", "", SourceType.THIRD_PARTY),
        ("Auto Trader", "", SourceType.THIRD_PARTY),
        ("CarGurus", "", SourceType.THIRD_PARTY),
        ("Lakeside Toyota Website", "Lakeside Toyota", SourceType.FIRST_PARTY),
        ("Dealer.com", "Lakeside Toyota", SourceType.FIRST_PARTY),
        ("Website Chat", "", SourceType.CHAT),
        ("Chattanooga Toyota Specials", "", SourceType.THIRD_PARTY),  # "chat" is a whole word
        ("Some New Lead Vendor", "Lakeside Toyota", SourceType.THIRD_PARTY),
    ],
)
def test_guess_source_type(provider: str, vendor: str, expected: SourceType) -> None:
    assert guess_source_type(provider, vendor_name=vendor) is expected


def test_same_web_domain_as_the_vendor_is_first_party() -> None:
    assert (
        guess_source_type(
            "LeadForm Pro",
            provider_url="https://www.summitford.example/forms",
            vendor_url="summitford.example",
        )
        is SourceType.FIRST_PARTY
    )


def test_source_types_mapping_is_a_parameter() -> None:
    body = adf(PROSPECT.replace("Cars.com", "Main Street Service Drive"))
    custom = {"service drive": SourceType.SERVICE_TO_SALES}
    lead = only_lead(body, source_types=custom)
    assert lead.source == LeadSource("Main Street Service Drive", SourceType.SERVICE_TO_SALES)
    assert only_lead(body).source.type is SourceType.THIRD_PARTY


def test_unknown_attribute_values_fall_back_to_defaults_with_warnings() -> None:
    body = adf(
        REQUEST
        + VEHICLE
        + "<customer><contact><phone type='home' time='lunch'>425-555-0100</phone></contact>"
        + "</customer>"
        + PROVIDER,
        attrs=" status='duplicate'",
    )
    (prospect,) = parse(body).prospects
    assert prospect.status is ProspectStatus.NEW
    assert prospect.lead.phones == (Phone("425-555-0100", "+14255550100", PhoneKind.UNKNOWN),)
    assert [w.what for w in prospect.warnings] == [
        "prospect status 'duplicate' is not new or resend; read as new",
        "no customer name",
        "phone type 'home' is not an ADF type; kind unknown",
        "phone time 'lunch' is not an ADF time; ignored",
    ]


def test_problem_text() -> None:
    assert str(AdfProblem("the body is empty")) == "document: the body is empty"
    problem = AdfProblem("no customer name", 3, "adf/prospect[3]/customer/contact")
    assert problem.message == "prospect 3: no customer name"
    assert str(problem) == "prospect 3: no customer name (at adf/prospect[3]/customer/contact)"


# --- fuzz: the only exception is AdfError --------------------------------------------------------

SAMPLE_BODIES = [path.read_bytes() for path in sorted(SAMPLES.glob("*.xml"))]
SPICE = [
    b"<",
    b">",
    b"&",
    b"&amp;",
    b"&#0;",
    b"&#x110000;",
    b"&nbsp;",
    b'"',
    b"=",
    b"/>",
    b"</prospect>",
    b"<prospect>",
    b"<vehicle interest=sell>",
    b"<phone>",
    b"<![CDATA[",
    b"]]>",
    b"<!--",
    b"-->",
    b"<?adf ",
    b"?>",
    b'<?xml version="1.0" encoding="utf-16"?>',
    b'<?xml encoding="Shift_JIS"?>',
    b"<!DOCTYPE adf [<!ENTITY a 'b'>]>",
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    b"\xff",
    b"\xc3",
    b"\x00",
    b"\xe2\x80\x9c",
    b"9999-12-31T23:59:59-23:59",
    b"0001-01-01T00:00:00+14:00",
    b"99999999999999999999",
]


@st.composite
def mutated_samples(draw: st.DrawFn) -> bytes:
    body = bytearray(draw(st.sampled_from(SAMPLE_BODIES)))
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, len(body)))
        operation = draw(st.sampled_from(["replace", "delete", "insert", "truncate"]))
        if operation == "replace" and position < len(body):
            body[position] = draw(st.integers(0, 255))
        elif operation == "delete":
            del body[position : position + draw(st.integers(1, 64))]
        elif operation == "insert":
            body[position:position] = draw(st.sampled_from(SPICE) | st.binary(max_size=8))
        elif operation == "truncate":
            del body[position:]
    return bytes(body)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=600), mutated_samples()))
def test_fuzz_only_adf_error_is_ever_raised(body: bytes) -> None:
    error: AdfError | None = None
    try:
        result = parse(body)
    except AdfError as err:
        error = err
    if error is not None:
        assert error.problems
        assert str(error).startswith("ADF document rejected: ")
    else:
        assert result.prospects
        assert all(p.lead.reachable for p in result.prospects)
