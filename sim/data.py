"""Seeded practice data, generated lazily, stored compactly, rendered as Sikka items on demand.

Design: ``practice_info(seed, index)`` derives a practice's identity (office id ``D1000 + index``,
secret key, name, Windows time zone) from the seed alone, so listing 5,000 practices costs
nothing. Its PMS contents (providers, operatories, patients with phones, past appointments) are
built by ``build_practice`` the first time something needs them, from a ``random.Random`` seeded
with ``(seed, office_id)``: the same seed always yields the same rows, whatever order practices
are touched in. Rows are small mutable ``msgspec.Struct``s (no GC tracking, interned date and
time strings, phones as ints) so 750,000 rows fit in a couple of hundred MB; the full Sikka item,
with its dozens of mostly-empty string fields, is produced only when a read asks for it
(``render_*`` below). Field lists per endpoint (default and ``fields=get_all``) follow the saved
Postman examples.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random

import msgspec

# ---------------------------------------------------------------------------------------------
# Field lists (default, get_all) as in the saved examples of the V4 collection.

APPOINTMENT_FIELDS = (
    "href", "patient_href", "patient_id", "guarantor_id", "provider_id", "provider_href",
    "practice_id", "practice_href", "guarantor_href", "amount", "status", "note",
    "surface_quadrant_type", "appointment_sr_no", "date", "time", "length", "description",
    "appointment_made_date", "type", "procedure_code1", "procedure_code1_amount",
    "procedure_code2", "procedure_code2_amount", "procedure_code3", "procedure_code3_amount",
    "patient_name", "guarantor_name", "procedure_code1_time", "procedure_code2_time",
    "procedure_code3_time", "surface_quadrant",
)
APPOINTMENT_ALL = APPOINTMENT_FIELDS + (
    "hygienist", "operatory", "last_changed_date", "procedure_code4", "procedure_code4_amount",
    "procedure_code5", "procedure_code5_amount", "procedure_code6", "procedure_code6_amount",
    "procedure_code7", "procedure_code7_amount", "is_companion", "sooner_if_possible",
    "confirmed_on_date", "procedure_code4_time", "procedure_code5_time", "procedure_code6_time",
    "procedure_code7_time", "tooth_number", "schedule", "treatment_class", "cancelled", "location",
    "procedure_codes", "cust_id", "is_confirmed", "rowhash", "original_provider",
    "status_in_office", "multiple_statuses", "performed", "cancelled_date", "arrival_status",
    "arrival_time", "in_chair_time", "walkout_time", "service_category",
)
SLOT_FIELDS = (
    "href", "provider_id", "provider_href", "practice_id", "practice_href", "date", "time",
    "template_code", "template_unit", "template_color", "template_type", "old_color", "old_code",
    "scheduled_color", "scheduled_code",
)
SLOT_ALL = SLOT_FIELDS + ("end_time", "time_units", "operatory", "sr_no", "cust_id")
PATIENT_FIELDS = (
    "href", "patient_id", "guarantor_id", "firstname", "middlename", "lastname", "preferred_name",
    "salutation", "birthdate", "status", "address_line1", "address_line2", "city", "state",
    "zipcode", "cell", "email", "first_visit", "last_visit", "provider_id", "provider_href",
    "practice_id", "practice_href", "appointment_href", "guarantor_href",
    "primary_insurance_company_id", "primary_insurance_company_href", "primary_relationship",
    "primary_medical_insurance", "primary_medical_insurance_id", "primary_medical_relationship",
    "primary_medical_subscriber_id", "subscriber_id", "other_referral", "patient_referral",
    "referred_out", "fee_no", "guarantor_first_name", "guarantor_last_name", "created_date",
    "preferred_contact", "preferred_communication_method",
)
PATIENT_ALL = PATIENT_FIELDS + (
    "patient_note", "medical_note", "alert_note", "other_note", "gender", "homephone", "workphone",
    "employer_id", "employer_href", "billing_type", "secondary_insurance_company_id",
    "secondary_insurance_company_href", "country", "secondary_medical_insurance",
    "secondary_medical_insurance_id", "secondary_medical_relationship",
    "secondary_medical_subscriber_id", "secondary_relationship", "patient_account_id",
    "referred_by_provider_id", "referred_by_patient_id", "image", "thumb_image", "hygienist",
    "integration_ids", "patient_codes", "primary_insurance", "secondary_insurance", "other_phone",
    "ui_patient_id", "marital_status", "cust_id", "secondary_subscriber_id",
    "secondary_fee_schedule", "email_alert", "text_alert", "voice_alert",
    "primary_subscriber_patient_id", "secondary_subscriber_patient_id", "guarantor_bill_type",
    "guarantor_bill_type_description", "bill_type", "guarantor_patient_id", "rowhash",
    "chart_number", "preferred_recall_method", "exclude_message", "extension",
    "guarantor_is_send_statements", "guarantor_no_email_statements", "suppress_billing",
    "profile_status",
)
PRACTICE_FIELDS = (
    "href", "patient_href", "address_line1", "address_line2", "city", "state", "zipcode", "email",
    "provider_href", "practice_id", "appointment_href", "guarantor_href", "transaction_href",
    "description", "name", "cust_id", "phone",
)
PRACTICE_ALL = PRACTICE_FIELDS + ("country", "national_provider_identifier", "website", "is_main_office")
PROVIDER_FIELDS = (
    "href", "provider_id", "firstname", "lastname", "address_line1", "address_line2", "city",
    "state", "zipcode", "country", "phone", "provider_type", "specialty", "practice_id",
    "practice_href", "patient_href", "appointment_href", "status", "provider_account_id",
    "state_id", "tax_identification_number", "medicaid_id", "drug_id",
    "national_provider_identifier", "email", "birthdate", "hire_date", "graduated_date",
    "initials", "ssn", "other_id", "bluecross_id", "medicare_id", "fee_schedule_id",
    "federal_id_no", "federal_id_sub_no", "gl_sub_account_number", "is_hidden", "cust_id",
    "specialty_code",
)
# get_all spells it "speciality" and has no drug_id (as the example does).
PROVIDER_ALL = tuple(f for f in PROVIDER_FIELDS if f not in ("specialty", "drug_id")) + (
    "speciality", "is_organization", "external_id", "is_user",
)
VARIABLE_FIELDS = ("href", "practice_id", "practice_href", "description", "service_name", "value")
VARIABLE_ALL = VARIABLE_FIELDS + ("service_item",)
STATUS_FIELDS = ("href", "status", "practice_id", "practice_href")
OPERATORY_FIELDS = ("provider_id", "practice_id", "operatory", "cust_id", "is_hidden", "abbreviation")
DAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
SCHEDULE_FIELDS = ("href", "practice_id", "practice_href", "date", "cust_id", "resource_type", "resource_id")
SCHEDULE_ALL = (
    SCHEDULE_FIELDS
    + tuple(f"{d}_{se}_{n}" for d in DAYS for n in (1, 2, 3) for se in ("start", "end"))
    + tuple(f"{d}_holiday" for d in DAYS)
)
AUTHORIZED_FIELDS = (
    "href", "city", "state", "practice_id", "address", "zip", "office_id", "domain", "secret_key",
    "practice_name", "practice_management_system", "financial_system",
    "practice_management_system_refresh_date", "data_synchronization_date", "data_insert_date",
    "practice_management_system_version", "practice_management_system_refresh_date_time_zone",
    "partner_id", "financial_system_refresh_date", "financial_system_version",
    "difference_in_minutes",
)
SYNC_FIELDS = (
    "status", "practice_id", "office_id", "domain", "practice_name", "practice_management_system",
    "data_insert_date", "practice_management_system_version",
    "practice_management_system_refresh_date_time_zone",
)

# ---------------------------------------------------------------------------------------------
# Pools

FIRST = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David",
    "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
    "Carlos", "Karen", "Daniel", "Lisa", "Matthew", "Nancy", "Anthony", "Betty", "Mark", "Sandra",
    "Priya", "Ashley", "Wei", "Emily", "Andrew", "Donna", "Joshua", "Michelle", "Kenji", "Carol",
    "Omar", "Amanda", "Luis", "Melissa", "Ahmed", "Deborah", "Ivan", "Stephanie", "Noah", "Rebecca",
)
LAST = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark",
    "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres",
    "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell",
)
# (city, state, zip, area code, Windows time zone, minutes behind UTC in standard time)
PLACES = (
    ("Newington", "CT", "06111", 860, "Eastern Standard Time", 300),
    ("Boston", "MA", "02118", 617, "Eastern Standard Time", 300),
    ("Atlanta", "GA", "30303", 404, "Eastern Standard Time", 300),
    ("Chicago", "IL", "60614", 312, "Central Standard Time", 360),
    ("Austin", "TX", "78701", 512, "Central Standard Time", 360),
    ("Denver", "CO", "80202", 303, "Mountain Standard Time", 420),
    ("Phoenix", "AZ", "85004", 602, "US Mountain Standard Time", 420),
    ("San Jose", "CA", "95116", 408, "Pacific Standard Time", 480),
    ("Seattle", "WA", "98101", 206, "Pacific Standard Time", 480),
    ("Anchorage", "AK", "99501", 907, "Alaskan Standard Time", 540),
    ("Honolulu", "HI", "96813", 808, "Hawaiian Standard Time", 600),
)
PRACTICE_WORDS = ("Cedar", "Maple", "Harbor", "Summit", "Riverside", "Lakeview", "Oak", "Bright", "Pine", "Valley")
PMS = (("Dentrix", "G7.4"), ("Eaglesoft", "21.20"), ("OpenDental", "23.1"), ("Dolphin Management", "2018"))
APPOINTMENT_STATUSES = ("Scheduled", "Confirmed", "Completed", "Broken", "Cancelled")
PRACTICE_VARIABLES = ("open.unconfirm", "open.confirm", "complete.unconfirm", "complete.confirm")
DESCRIPTIONS = ("Cleaning", "Exam", "Filling", "Crown prep", "Root canal", "Consult", "X-rays", "Whitening")
TIMES = tuple(f"{h:02d}:{m:02d}" for h in range(8, 17) for m in (0, 30))
LENGTHS = ("30", "30", "60", "60", "90")
PROVIDER_KINDS = (("DDS", "General Dentist", "1223G0001X"), ("HYG", "Dental Hygienist", "124Q00000X"))

OPEN_HOUR, CLOSE_HOUR, SLOT_MINUTES = 8, 17, 30


class PracticeInfo(msgspec.Struct, frozen=True, gc=False):
    index: int
    office_id: str
    secret_key: str
    name: str
    city: str
    state: str
    zipcode: str
    area: int
    time_zone: str
    utc_minutes: int
    pms: str
    pms_version: str


class Patient(msgspec.Struct, gc=False):
    patient_id: str
    firstname: str
    lastname: str
    birthdate: str  # yyyy-mm-dd
    gender: str
    cell: str
    homephone: str
    workphone: str
    email: str
    provider_id: str
    status: str = "Active"
    middlename: str = ""
    address_line1: str = ""
    city: str = ""
    state: str = ""
    zipcode: str = ""
    created_at: str = ""  # ISO UTC, or yyyy-mm-dd for seeded rows
    source: str = "seed"
    writeback_id: str | None = None
    visible_at: float = 0.0  # reads see the row from this Unix time on (refresh lag)


class Appointment(msgspec.Struct, gc=False):
    appointment_sr_no: str
    patient_id: str
    provider_id: str
    operatory: str
    date: str  # yyyy-mm-dd, practice-local
    time: str  # HH:mm
    length: str
    status: str
    description: str
    made_date: str  # yyyy-mm-dd
    created_at: str = ""
    source: str = "seed"
    writeback_id: str | None = None
    visible_at: float = 0.0


class Provider(msgspec.Struct, frozen=True, gc=False):
    provider_id: str
    firstname: str
    lastname: str
    provider_type: str
    specialty: str
    specialty_code: str


class PracticeData:
    """The PMS contents of one practice (mutated in place by completed writebacks)."""

    __slots__ = ("providers", "operatories", "patients", "appointments", "next_patient_id", "next_sr_no")

    def __init__(self, providers, operatories, patients, appointments, next_patient_id, next_sr_no):
        self.providers: list[Provider] = providers
        self.operatories: list[str] = operatories
        self.patients: dict[str, Patient] = patients
        self.appointments: dict[str, Appointment] = appointments
        self.next_patient_id = next_patient_id
        self.next_sr_no = next_sr_no


def secret_key(seed: int, office_id: str) -> str:
    return hashlib.sha256(f"sikka-sim:{seed}:{office_id}".encode()).hexdigest()[:32]


def practice_info(seed: int, index: int) -> PracticeInfo:
    office_id = f"D{1000 + index}"
    h = int.from_bytes(hashlib.sha256(f"{seed}:{office_id}:info".encode()).digest()[:8], "big")
    place = PLACES[h % len(PLACES)]
    pms = PMS[(h >> 8) % len(PMS)]
    word = PRACTICE_WORDS[(h >> 16) % len(PRACTICE_WORDS)]
    return PracticeInfo(
        index=index,
        office_id=office_id,
        secret_key=secret_key(seed, office_id),
        name=f"{word} {place[0]} Dental {index + 1}",
        city=place[0],
        state=place[1],
        zipcode=place[2],
        area=place[3],
        time_zone=place[4],
        utc_minutes=place[5],
        pms=pms[0],
        pms_version=pms[1],
    )


def phone(area: int, n: int) -> str:
    return f"{area}-{n // 10000 % 1000:03d}-{n % 10000:04d}"


def build_practice(
    seed: int, info: PracticeInfo, today: dt.date, n_patients: int, n_appointments: int
) -> PracticeData:
    """All rows of one practice. Seeded appointments lie on days before ``today``."""
    rng = random.Random(f"{seed}:{info.office_id}:data")
    r = rng.random
    providers = [
        Provider(f"{code}{i + 1}", FIRST[int(r() * len(FIRST))], LAST[int(r() * len(LAST))], "Provider", spec, scode)
        for i, (code, spec, scode) in enumerate(PROVIDER_KINDS * 2)
    ]
    operatories = [f"OP{i + 1}" for i in range(4)]
    day_cache: dict[int, str] = {}

    def day(offset: int) -> str:  # interned ISO dates relative to today
        s = day_cache.get(offset)
        if s is None:
            s = day_cache[offset] = (today + dt.timedelta(days=offset)).isoformat()
        return s

    patients: dict[str, Patient] = {}
    nf, nl, npv = len(FIRST), len(LAST), len(providers)
    for i in range(n_patients):
        pid = str(10000 + i)
        first, last = FIRST[int(r() * nf)], LAST[int(r() * nl)]
        patients[pid] = Patient(
            patient_id=pid,
            firstname=first,
            lastname=last,
            birthdate=day(-int(3650 + r() * 25000)),
            gender="female" if r() < 0.5 else "male",
            cell=phone(info.area, int(r() * 10_000_000)),
            homephone=phone(info.area, int(r() * 10_000_000)) if r() < 0.5 else "",
            workphone=phone(info.area, int(r() * 10_000_000)) if r() < 0.3 else "",
            email=f"{first}.{last}{pid}@example.com".lower(),
            provider_id=providers[int(r() * npv)].provider_id,
            city=info.city,
            state=info.state,
            zipcode=info.zipcode,
            created_at=day(-int(400 + r() * 2000)),
        )
    pids = list(patients)
    appointments: dict[str, Appointment] = {}
    for i in range(n_appointments):
        sr = str(50000 + i)
        made = -int(1 + r() * 365)
        appointments[sr] = Appointment(
            appointment_sr_no=sr,
            patient_id=pids[int(r() * len(pids))] if pids else "",
            provider_id=providers[int(r() * npv)].provider_id,
            operatory=operatories[int(r() * len(operatories))],
            date=day(made + int(r() * -made)),  # in [made, -1]: always before today
            time=TIMES[int(r() * len(TIMES))],
            length=LENGTHS[int(r() * len(LENGTHS))],
            status=APPOINTMENT_STATUSES[int(r() * len(APPOINTMENT_STATUSES))],
            description=DESCRIPTIONS[int(r() * len(DESCRIPTIONS))],
            made_date=day(made),
            created_at=day(made),
        )
    return PracticeData(providers, operatories, patients, appointments, 10000 + n_patients, 50000 + n_appointments)


# ---------------------------------------------------------------------------------------------
# Rendering: full items (every field of get_all); the caller projects onto the chosen fields.


def render_appointment(base: str, a: Appointment, patients: dict[str, Patient]) -> dict[str, str]:
    p = patients.get(a.patient_id)
    item = dict.fromkeys(APPOINTMENT_ALL, "")
    pr = f"{base}/practices/1"
    item.update(
        href=f"{pr}/appointments/{a.appointment_sr_no}",
        patient_href=f"{pr}/patients/{a.patient_id}",
        patient_id=a.patient_id,
        provider_id=a.provider_id,
        provider_href=f"{pr}/providers/{a.provider_id}",
        practice_id="1",
        practice_href=pr,
        amount="0.0000",
        status=a.status,
        appointment_sr_no=a.appointment_sr_no,
        date=f"{a.date}T00:00:00",
        time=a.time,
        length=a.length,
        description=a.description,
        appointment_made_date=f"{a.made_date}T00:00:00",
        type="General",
        patient_name=f"{p.firstname} {p.lastname}" if p else "",
        operatory=a.operatory,
        cust_id="1",
        cancelled="True" if a.status in ("Cancelled", "Broken") else "False",
        is_confirmed="True" if a.status == "Confirmed" else "False",
        **{f"procedure_code{n}_amount": "0" for n in range(1, 8)},
        **{f"procedure_code{n}_time": "0" for n in range(1, 8)},
    )
    return item


def render_patient(base: str, p: Patient) -> dict[str, str]:
    item = dict.fromkeys(PATIENT_ALL, "")
    pr = f"{base}/practices/1"
    item.update(
        href=f"{pr}/patients/{p.patient_id}",
        patient_id=p.patient_id,
        guarantor_id=p.patient_id,
        firstname=p.firstname,
        middlename=p.middlename,
        lastname=p.lastname,
        birthdate=f"{p.birthdate}T00:00:00" if p.birthdate else "",
        status=p.status,
        address_line1=p.address_line1,
        city=p.city,
        state=p.state,
        zipcode=p.zipcode,
        cell=p.cell,
        homephone=p.homephone,
        workphone=p.workphone,
        email=p.email,
        gender=p.gender,
        provider_id=p.provider_id,
        provider_href=f"{pr}/providers/{p.provider_id}",
        practice_id="1",
        practice_href=pr,
        appointment_href=f"{pr}/appointments?patient_id={p.patient_id}",
        guarantor_href=f"{pr}/guarantors/{p.patient_id}",
        primary_insurance_company_href=f"{pr}/insurance_companies/",
        fee_no="0",
        guarantor_first_name=p.firstname,
        guarantor_last_name=p.lastname,
        created_date=f"{p.created_at[:10]}T00:00:00",
        cust_id="1",
        country="US",
    )
    return item


def render_provider(base: str, info: PracticeInfo, v: Provider) -> dict[str, str]:
    item = dict.fromkeys(PROVIDER_FIELDS + PROVIDER_ALL, "")
    pr = f"{base}/practices/1"
    item.update(
        href=f"{pr}/providers/{v.provider_id}",
        provider_id=v.provider_id,
        firstname=v.firstname,
        lastname=v.lastname,
        city=info.city,
        state=info.state,
        zipcode=info.zipcode,
        country="US",
        provider_type=v.provider_type,
        specialty=v.specialty,
        speciality=v.specialty,
        specialty_code=v.specialty_code,
        practice_id="1",
        practice_href=pr,
        patient_href=f"{pr}/patients?provider_id={v.provider_id}",
        appointment_href=f"{pr}/appointments?provider_id={v.provider_id}",
        status="Active",
        initials=v.firstname[0] + v.lastname[0],
        is_hidden="False",
        cust_id="1",
        is_organization="False",
        is_user="False",
    )
    return item


def render_practice(base: str, info: PracticeInfo) -> dict[str, str]:
    pr = f"{base}/practices/1"
    item = dict.fromkeys(PRACTICE_ALL, "")
    item.update(
        href=pr,
        patient_href=f"{pr}/patients",
        address_line1=f"{100 + info.index % 900} Main Street",
        city=info.city,
        state=info.state,
        zipcode=info.zipcode,
        provider_href=f"{pr}/providers",
        practice_id="1",
        appointment_href=f"{pr}/appointments",
        guarantor_href=f"{pr}/guarantors",
        transaction_href=f"{pr}/transactions",
        name=info.name,
        cust_id="1",
        phone=f"{info.area}555{info.index % 10000:04d}",
        country="US",
        is_main_office="True",
    )
    return item
