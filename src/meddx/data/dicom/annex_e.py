"""PS3.15 Annex E, Table E.1-1: the attribute actions of the confidentiality profiles, as data.

One line per attribute of DICOM PS3.15 (2026d edition) Table E.1-1 "Application Level
Confidentiality Profile Attributes"; transcribed from the standard's table (DICOM is (c) NEMA;
the standard may be used to implement it). Columns, separated by ``|``:

1. tag ``GGGGEEEE`` (``xx`` marks the repeating groups 50xx / 60xx; ``oddxxxxx`` the private
   attributes, any odd group);
2. the Basic Profile action: ``X`` remove, ``Z`` zero-length, ``D`` dummy value, ``U`` new UID
   (``U*``: replace the UIDs inside the sequence), ``K`` keep, ``C`` clean; compound ``X/Z``,
   ``X/D``, ``Z/D``, ``X/Z/D``, ``X/Z/U*`` depend on the attribute's type in the IOD;
3. option columns where the option changes the action: ``uids`` (Retain UIDs, K), ``device``
   (Retain Device Identity, K or ``=C``), ``institution`` (Retain Institution Identity, K),
   ``chars`` (Retain Patient Characteristics, K or ``=C``), ``dates`` (Retain Longitudinal
   Temporal Information: Full Dates K / Modified Dates C), ``desc`` (Clean Descriptors, C),
   ``struct`` (Clean Structured Content, C), ``graphics`` (Clean Graphics, C), ``private``
   (Retain Safe Private, C);
4. the attribute name.

:func:`load_table` parses it once; :mod:`meddx.data.dicom.deidentify` applies it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

__all__ = ["EDITION", "OPTION_COLUMNS", "ProfileRule", "load_table"]

EDITION = "2026d"
OPTION_COLUMNS = ("uids", "device", "institution", "chars", "dates", "desc", "struct",
                  "graphics", "private")

TABLE_E1_1 = """\
00080050|Z||Accession Number
00184000|X|desc|Acquisition Comments
00400556|X|desc|Acquisition Context Description
00400555|X/Z|struct|Acquisition Context Sequence
00080022|X/Z|dates|Acquisition Date
0008002A|X/Z/D|dates|Acquisition DateTime
00181400|X/D|desc|Acquisition Device Processing Description
001811BB|D|desc|Acquisition Field of View Label
00189424|X|desc|Acquisition Protocol Description
00080032|X/Z|dates|Acquisition Time
00080017|U|uids|Acquisition UID
00404035|X||Actual Human Performers Sequence
001021B0|X|desc|Additional Patient History
0040A353|X||Address (Trial)
00380010|X||Admission ID
00380020|X|dates|Admitting Date
00081084|X|desc|Admitting Diagnoses Code Sequence
00081080|X|desc|Admitting Diagnoses Description
00380021|X|dates|Admitting Time
00001000|X|uids|Affected SOP Instance UID
00102110|X|chars=C desc|Allergies
0040B034|X|dates|Annotation DateTime
006A0006|X|desc|Annotation Group Description
006A0005|D|desc|Annotation Group Label
006A0003|D|uids|Annotation Group UID
00440004|X|dates|Approval Status DateTime
40000010|X||Arbitrary
00440104|D|dates|Assertion DateTime
00440105|X|dates|Assertion Expiration DateTime
04000562|D|dates|Attribute Modification DateTime
0040A078|X||Author Observer Sequence
22000005|X/Z||Barcode Value
300A00C3|X|desc|Beam Description
300C0127|D|device dates|Beam Hold Transition DateTime
300A00DD|X|desc|Bolus Description
00101081|X||Branch of Service
0014407E|X|device dates|Calibration Date
00181203|Z|device dates|Calibration DateTime
0014407C|X|device dates|Calibration Time
0016004D|X||Camera Owner Name
00181007|X|device|Cassette ID
04000115|D||Certificate of Signer
04000310|X|dates|Certified Timestamp
003A020C|X|desc|Channel Derivation Description
003A0203|X|desc|Channel Label
00120060|Z|institution|Clinical Trial Coordinating Center Name
00120082|X||Clinical Trial Protocol Ethics Committee Approval Number
00120081|D|institution|Clinical Trial Protocol Ethics Committee Name
00120020|D||Clinical Trial Protocol ID
00120021|Z||Clinical Trial Protocol Name
00120072|X|desc|Clinical Trial Series Description
00120071|X||Clinical Trial Series ID
00120030|Z|institution|Clinical Trial Site ID
00120031|Z|institution|Clinical Trial Site Name
00120010|D||Clinical Trial Sponsor Name
00120040|D||Clinical Trial Subject ID
00120042|D||Clinical Trial Subject Reading ID
00120051|X|desc|Clinical Trial Time Point Description
00120050|Z||Clinical Trial Time Point ID
00400310|X|desc|Comments on Radiation Dose
00400280|X|desc|Comments on the Performed Procedure Step
300A02EB|X|desc|Compensator Description
00209161|U|uids|Concatenation UID
3010000F|Z|desc|Conceptual Volume Combination Description
30100017|Z|desc|Conceptual Volume Description
30100006|U|uids|Conceptual Volume UID
00403001|X||Confidentiality Constraint on Patient Data Description
30100013|U|uids|Constituent Conceptual Volume UID
0008009C|Z||Consulting Physician's Name
0008009D|X||Consulting Physician Identification Sequence
0050001B|X||Container Component ID
0040051A|X|desc|Container Description
00400512|D||Container Identifier
00700086|X||Content Creator's Identification Code Sequence
00700084|Z/D||Content Creator's Name
00080023|Z/D|dates|Content Date
0040A730|D|struct|Content Sequence
00080033|Z/D|dates|Content Time
00080107|D|dates|Context Group Local Version
00080106|D|dates|Context Group Version
00180010|Z/D|desc|Contrast/Bolus Agent
00181042|X|dates|Contrast/Bolus Start Time
00181043|X|dates|Contrast/Bolus Stop Time
0018A002|X|dates|Contribution DateTime
0018A003|X|desc|Contribution Description
00102150|X||Country of Residence
21000040|X|dates|Creation Date
21000050|X|dates|Creation Time
0040A307|X||Current Observer (Trial)
00380300|X||Current Patient Location
50xxxxxx|X|graphics|Curve Data
00080025|X|dates|Curve Date
00080035|X|dates|Curve Time
0040A07C|X||Custodial Organization Sequence
FFFCFFFC|X||Data Set Trailing Padding
0040A121|D|dates|Date
0040A110|X|dates|Date of Document or Verbal Transaction (Trial)
00181205|X|device dates|Date of Installation
00181200|X|device dates|Date of Last Calibration
0018700C|X/D|device dates|Date of Last Detector Calibration
00181204|X|device dates|Date of Manufacture
00181012|X|dates|Date of Secondary Capture
0040A120|D|dates|DateTime
00181202|X|device dates|DateTime of Last Calibration
00189701|D|dates|Decay Correction DateTime
0018937F|X|desc|Decomposition Description
00082111|X|desc|Derivation Description
21000140|D|device=C|Destination AE
0018700A|X/D|device|Detector ID
3010001B|Z||Device Alternate Identifier
00500020|X|device|Device Description
3010002D|D|device|Device Label
00181000|X/Z/D|device|Device Serial Number
0016004B|X|desc|Device Setting Description
00181002|U|uids device|Device UID
04000105|D|dates|Digital Signature DateTime
FFFAFFFA|X||Digital Signatures Sequence
04000100|U||Digital Signature UID
00209164|U|uids|Dimension Organization UID
00380030|X|dates|Discharge Date
00380040|X|desc|Discharge Diagnosis Description
00380032|X|dates|Discharge Time
300A079A|X|desc|Displacement Reference Label
0040E012|X||Display URI
4008011A|X||Distribution Address
40080119|X||Distribution Name
3004007F|X|desc|Dose Calculation Model Name
300A0016|X|desc|Dose Reference Description
300A0013|U|uids|Dose Reference UID
3010006E|U|uids|Dosimetric Objective UID
00686226|D|dates|Effective DateTime
0040A034|X|dates|Effective Start DateTime
0040A035|X|dates|Effective Stop DateTime
00420011|D||Encapsulated Document
00189517|X/D|dates|End Acquisition DateTime
30100037|X|desc|Entity Description
30100035|D|desc|Entity Label
30100038|D|desc|Entity Long Label
30100036|X|desc|Entity Name
300A0676|X|desc|Equipment Frame of Reference Description
00120087|X|dates|Ethics Committee Approval Effectiveness End Date
00120086|X|dates|Ethics Committee Approval Effectiveness Start Date
00102160|X|chars|Ethnic Group
00102161|X|chars|Ethnic Group Code Sequence
00102162|X|chars|Ethnic Groups
00189804|D|dates|Exclusion Start DateTime
00404011|X|dates|Expected Completion DateTime
00080058|U|uids|Failed SOP Instance UID List
0070031A|U|uids|Fiducial UID
00402017|Z||Filler Order Number / Imaging Service Request
003A032B|X|desc|Filter Lookup Table Description
0040A023|X|dates|Findings Group Recording Date (Trial)
0040A024|X|dates|Findings Group Recording Time (Trial)
30080054|X/D|dates|First Treatment Date
300A0196|X|desc|Fixation Device Description
00340002|D||Flow Identifier
00340001|D||Flow Identifier Sequence
3010007F|Z|desc|Fractionation Notes
300A0072|X|desc|Fraction Group Description
00189074|D|dates|Frame Acquisition DateTime
00209158|X|desc|Frame Comments
00200052|U|uids|Frame of Reference UID
00340007|D|dates|Frame Origin Timestamp
00189151|D|dates|Frame Reference DateTime
00189623|D|dates|Functional Sync Pulse
00181008|X|device|Gantry ID
00100044|X||Gender Identity Code Sequence
00100045|X|desc|Gender Identity Comment
00100041|X||Gender Identity Sequence
00181005|X|device|Generator ID
00160076|X||GPS Altitude
00160075|X||GPS Altitude Ref
0016008C|X||GPS Area Information
0016008D|X|dates|GPS Date Stamp
00160088|X||GPS Dest Bearing
00160087|X||GPS Dest Bearing Ref
0016008A|X||GPS Dest Distance
00160089|X||GPS Dest Distance Ref
00160084|X||GPS Dest Latitude
00160083|X||GPS Dest Latitude Ref
00160086|X||GPS Dest Longitude
00160085|X||GPS Dest Longitude Ref
0016008E|X||GPS Differential
0016007B|X||GPS DOP
00160081|X||GPS Img Direction
00160080|X||GPS Img Direction Ref
00160072|X||GPS Latitude
00160071|X||GPS Latitude Ref
00160074|X||GPS Longitude
00160073|X||GPS Longitude Ref
00160082|X||GPS Map Datum
0016007A|X||GPS Measure Mode
0016008B|X||GPS Processing Method
00160078|X||GPS Satellites
0016007D|X||GPS Speed
0016007C|X||GPS Speed Ref
00160079|X||GPS Status
00160077|X||GPS Time Stamp
0016007F|X||GPS Track
0016007E|X||GPS Track Ref
00160070|X||GPS Version ID
00700001|D|graphics|Graphic Annotation Sequence
0072000A|D|dates|Hanging Protocol Creation DateTime
00181011|X|device|Hardcopy Creation Device ID
00081304|X|desc|Histological Diagnoses Code Sequence
0040E004|X|dates|HL7 Document Effective Time
00404037|X||Human Performer's Name
00404036|X||Human Performer's Organization
00880200|X||Icon Image Sequence
00084000|X|desc|Identifying Comments
00204000|X|desc|Image Comments
00284000|X||Image Presentation Comments
00402400|X|desc|Imaging Service Request Comments
003A0314|D|dates|Impedance Measurement DateTime
40080300|X|desc|Impressions
00686270|D|dates|Information Issue DateTime
00080015|X|dates|Instance Coercion DateTime
00080012|X/D|dates|Instance Creation Date
00080013|X/Z/D|dates|Instance Creation Time
00080014|U|uids|Instance Creator UID
04000600|X||Instance Origin Status
00080081|X|institution|Institution Address
00081040|X|institution|Institutional Department Name
00081041|X|institution|Institutional Department Type Code Sequence
00080082|X/Z/D|institution|Institution Code Sequence
00080080|X/Z/D|institution|Institution Name
00189919|Z/D|dates|Instruction Performed DateTime
00101050|X||Insurance Plan Identification
30100085|X|dates|Intended Fraction Start Time
3010004D|X/D|dates|Intended Phase End Date
3010004C|X/D|dates|Intended Phase Start Date
00401011|X||Intended Recipients of Results Identification Sequence
300A0741|D|dates|Interlock DateTime
300A0742|D|desc|Interlock Description
300A0783|D|desc|Interlock Origin Description
40080112|X|dates|Interpretation Approval Date
40080113|X|dates|Interpretation Approval Time
40080111|X||Interpretation Approver Sequence
4008010C|X||Interpretation Author
40080115|X|desc|Interpretation Diagnosis Description
40080200|X||Interpretation ID
40080202|X||Interpretation ID Issuer
40080100|X|dates|Interpretation Recorded Date
40080101|X|dates|Interpretation Recorded Time
40080102|X||Interpretation Recorder
4008010B|X|desc|Interpretation Text
4008010A|X||Interpretation Transcriber
40080108|X|dates|Interpretation Transcription Date
40080109|X|dates|Interpretation Transcription Time
00180035|X|dates|Intervention Drug Start Time
00180027|X|dates|Intervention Drug Stop Time
00083010|U|uids|Irradiation Event UID
00402004|X|dates|Issue Date of Imaging Service Request
00380011|X||Issuer of Admission ID
00380014|X||Issuer of Admission ID Sequence
00120022|X||Issuer of Clinical Trial Protocol ID
00120073|X||Issuer of Clinical Trial Series ID
00120032|X||Issuer of Clinical Trial Site ID
00120041|X||Issuer of Clinical Trial Subject ID
00120043|X||Issuer of Clinical Trial Subject Reading ID
00120055|X||Issuer of Clinical Trial Time Point ID
00100021|X||Issuer of Patient ID
00380061|X||Issuer of Service Episode ID
00380064|X||Issuer of Service Episode ID Sequence
00400513|Z||Issuer of the Container Identifier Sequence
00400562|Z||Issuer of the Specimen Identifier Sequence
00402005|X|dates|Issue Time of Imaging Service Request
22000002|X/Z|desc|Label Text
00281214|U|uids|Large Palette Color Lookup Table UID
001021D0|X|dates|Last Menstrual Date
0016004F|X|device|Lens Make
00160050|X|device|Lens Model
00160051|X|device|Lens Serial Number
0016004E|X|device|Lens Specification
00500021|X|desc|Long Device Description
04000404|X||MAC
0016002B|X|desc|Maker Note
0018100B|U|uids device|Manufacturer's Device Class UID
30100043|Z|device|Manufacturer's Device Identifier
00020003|U|uids|Media Storage SOP Instance UID
00102000|X|desc|Medical Alerts
00101090|X||Medical Record Locator
00101080|X||Military Rank
04000550|X||Modified Attributes Sequence
00203403|X|dates|Modified Image Date
00203406|X||Modified Image Description
00203405|X|dates|Modified Image Time
00203401|X|device|Modifying Device ID
04000563|D|device|Modifying System
0040B03F|X|desc|Montage Channel Label
0040B03B|X|desc|Montage Name
30080056|X/D|dates|Most Recent Treatment Date
0018937B|X|desc|Multi-energy Acquisition Description
003A0020|X|desc|Multiplex Group Label
003A0310|U|uids|Multiplex Group UID
00081060|X||Name of Physician(s) Reading Study
00401010|X||Names of Intended Recipients of Results
00100012|X||Name to Use
00100013|X||Name to Use Comment
00081000|X|device=C|Network ID
04000552|X||Nonconforming Data Element Value
04000551|X||Nonconforming Modified Attributes Sequence
0040A192|X|dates|Observation Date (Trial)
0040A032|X/D|dates|Observation DateTime
0040A033|X|dates|Observation Start DateTime
0040A402|U|uids|Observation Subject UID (Trial)
0040A193|X|dates|Observation Time (Trial)
0040A171|U|uids|Observation UID
00102180|X|desc|Occupation
00081072|X/D||Operator Identification Sequence
00081070|X/Z/D||Operators' Name
00402010|X||Order Callback Phone Number
00402011|X||Order Callback Telecom Information
00402008|X||Order Entered By
00402009|X||Order Enterer's Location
04000561|X||Original Attributes Sequence
21000070|X|device=C|Originator
00120023|X||Other Clinical Trial Protocol IDs Sequence
00101000|X||Other Patient IDs
00101002|X||Other Patient IDs Sequence
00101001|X||Other Patient Names
60xx4000|X|graphics|Overlay Comments
60xx3000|X|graphics|Overlay Data
00080024|X|dates|Overlay Date
00080034|X|dates|Overlay Time
300A0760|D|dates|Override DateTime
00281199|U|uids|Palette Color Lookup Table UID
0040A07A|X||Participant Sequence
0040A082|Z|dates|Participation DateTime
00101040|X||Patient's Address
00101010|X|chars|Patient's Age
00100030|Z||Patient's Birth Date
00101005|X||Patient's Birth Name
00100032|X||Patient's Birth Time
00380400|X||Patient's Institution Residence
00100050|X||Patient's Insurance Plan Code Sequence
00101060|X||Patient's Mother's Birth Name
00100010|Z||Patient's Name
00100101|X||Patient's Primary Language Code Sequence
00100102|X||Patient's Primary Language Modifier Code Sequence
001021F0|X||Patient's Religious Preference
00100040|Z|chars|Patient's Sex
00102203|X/Z|chars|Patient's Sex Neutered
00101020|X|chars|Patient's Size
00102155|X||Patient's Telecom Information
00102154|X||Patient's Telephone Numbers
00101030|X|chars|Patient's Weight
00104000|X|desc|Patient Comments
00100020|Z/D||Patient ID
300A0794|X|desc|Patient Setup Photo Description
300A0650|U|uids|Patient Setup UID
00380500|X|chars=C desc|Patient State
00401004|X||Patient Transport Arrangements
300A0792|X|desc|Patient Treatment Preparation Method Description
300A078E|X|desc|Patient Treatment Preparation Procedure Parameter Description
00400243|X||Performed Location
00400254|X|desc|Performed Procedure Step Description
00400250|X|dates|Performed Procedure Step End Date
00404051|X|dates|Performed Procedure Step End DateTime
00400251|X|dates|Performed Procedure Step End Time
00400253|X||Performed Procedure Step ID
00400244|X|dates|Performed Procedure Step Start Date
00404050|X|dates|Performed Procedure Step Start DateTime
00400245|X|dates|Performed Procedure Step Start Time
00400241|X|device=C|Performed Station AE Title
00404030|X|device|Performed Station Geographic Location Code Sequence
00400242|X|device|Performed Station Name
00404028|X|device|Performed Station Name Code Sequence
00081050|X||Performing Physician's Name
00081052|X||Performing Physician Identification Sequence
00401102|X||Person's Address
00401104|X||Person's Telecom Information
00401103|X||Person's Telephone Numbers
00401101|D||Person Identification Code Sequence
0040A123|D||Person Name
00100011|X||Person Names to Use Sequence
00081048|X||Physician(s) of Record
00081049|X||Physician(s) of Record Identification Sequence
00081062|X||Physician(s) Reading Study Identification Sequence
40080114|X||Physician Approving Interpretation
00402016|Z||Placer Order Number / Imaging Service Request
00181004|X|device|Plate ID
30020123|X|desc|Position Acquisition Template Description
30020121|X|desc|Position Acquisition Template Name
001021C0|X|chars|Pregnancy Status
00400012|X|chars=C|Pre-Medication
300A000E|X|desc|Prescription Description
3010007B|Z|desc|Prescription Notes
30100081|Z|desc|Prescription Notes Sequence
00700082|X|dates|Presentation Creation Date
00700083|X|dates|Presentation Creation Time
00701101|U|uids|Presentation Display Collection UID
00701102|U|uids|Presentation Sequence Collection UID
00081302|X|desc|Primary Diagnosis Code Sequence
00081301|X|desc|Principal Diagnosis Code Sequence
30100061|X|desc|Prior Treatment Dose Description
oddxxxxx|X|private=C|Private Attributes
00404052|X|dates|Procedure Step Cancellation DateTime
0044000B|X|dates|Product Expiration DateTime
00100015|X||Pronoun Code Sequence
00100016|X|desc|Pronoun Comment
00181030|X/D|desc|Protocol Name
00081088|X|desc|Pyramid Description
00200027|X|desc|Pyramid Label
00080019|U|uids|Pyramid UID
300A0619|D|desc|Radiation Dose Identification Label
300A0623|D|desc|Radiation Dose In-Vivo Measurement Label
300A067D|Z|desc|Radiation Generation Mode Description
300A067C|D|desc|Radiation Generation Mode Label
00181078|X|dates|Radiopharmaceutical Start DateTime
00181072|X|dates|Radiopharmaceutical Start Time
00181079|X|dates|Radiopharmaceutical Stop DateTime
00181073|X|dates|Radiopharmaceutical Stop Time
300C0113|X|desc|Reason for Omission Description
0040100A|X|desc|Reason for Requested Procedure Code Sequence
00321030|X|desc|Reason for Study
3010005C|Z|desc|Reason for Superseding
04000565|D|desc|Reason for the Attribute Modification
00402001|X|desc|Reason for the Imaging Service Request
00401002|X|desc|Reason for the Requested Procedure
00321066|X|desc|Reason for Visit
00321067|X|desc|Reason for Visit Code Sequence
00741234|X|device=C|Receiving AE
300A073A|D|dates|Recorded RT Control Point DateTime
3010000B|U|uids|Referenced Conceptual Volume UID
0040A13A|D|dates|Referenced DateTime
04000402|X||Referenced Digital Signature Sequence
300A0083|U|uids|Referenced Dose Reference UID
3010006F|U|uids|Referenced Dosimetric Objective UID
30100031|U|uids|Referenced Fiducials UID
30060024|U|uids|Referenced Frame of Reference UID
00404023|U|uids|Referenced General Purpose Scheduled Procedure Step Transaction UID
00081140|X/Z/U*|uids|Referenced Image Sequence
0040A172|U|uids|Referenced Observation UID (Trial)
00380004|X||Referenced Patient Alias Sequence
00101100|X||Referenced Patient Photo Sequence
00081120|X|uids|Referenced Patient Sequence
00081111|X/Z/D|uids|Referenced Performed Procedure Step Sequence
04000403|X||Referenced SOP Instance MAC Sequence
00081155|U|uids|Referenced SOP Instance UID
00041511|U|uids|Referenced SOP Instance UID in File
00081110|X/Z|uids|Referenced Study Sequence
300A0785|U|uids|Referenced Treatment Position Group UID
00080092|X||Referring Physician's Address
00080090|Z||Referring Physician's Name
00080094|X||Referring Physician's Telephone Numbers
00080096|X||Referring Physician Identification Sequence
00102152|X||Region of Residence
300600C2|U|uids|Related Frame of Reference UID
00400275|X|desc|Request Attributes Sequence
00321070|X|desc|Requested Contrast Agent
00401400|X|desc|Requested Procedure Comments
00321060|X/Z|desc|Requested Procedure Description
00401001|X||Requested Procedure ID
00401005|X||Requested Procedure Location
00189937|X|desc|Requested Series Description
00001001|U|uids|Requested SOP Instance UID
00741236|X|device=C|Requesting AE
00321032|X||Requesting Physician
00321033|X|desc|Requesting Service
00189185|X|desc|Respiratory Motion Compensation Technique Description
00102299|X||Responsible Organization
00102297|X||Responsible Person
40084000|X|desc|Results Comments
40080118|X||Results Distribution List Sequence
40080040|X||Results ID
40080042|X||Results ID Issuer
00080054|X|device=C|Retrieve AE Title
300E0004|Z|dates|Review Date
300E0008|X/Z||Reviewer Name
300E0005|Z|dates|Review Time
3006004D|X||ROI Creator Sequence
3006002D|X|dates|ROI DateTime
30060028|X|desc|ROI Description
30060038|X|desc|ROI Generation Description
300600A6|Z||ROI Interpreter
3006004E|X||ROI Interpreter Sequence
30060026|Z|desc|ROI Name
3006002E|X|dates|ROI Observation DateTime
30060088|X|desc|ROI Observation Description
30060085|X|desc|ROI Observation Label
300A0615|Z||RT Accessory Device Slot ID
300A0611|Z||RT Accessory Holder Slot ID
3010005A|Z|desc|RT Physician Intent Narrative
300A0006|X/D|dates|RT Plan Date
300A0004|X|desc|RT Plan Description
300A0002|D|desc|RT Plan Label
300A0003|X|desc|RT Plan Name
300A0007|X/D|dates|RT Plan Time
30100054|D|desc|RT Prescription Label
300A062A|D|desc|RT Tolerance Set Label
30100056|X/D|desc|RT Treatment Approach Label
3010003B|U|uids|RT Treatment Phase UID
30080162|D|dates|Safe Position Exit Date
30080164|D|dates|Safe Position Exit Time
30080166|D|dates|Safe Position Return Date
30080168|D|dates|Safe Position Return Time
0038001A|X|dates|Scheduled Admission Date
0038001B|X|dates|Scheduled Admission Time
0038001C|X|dates|Scheduled Discharge Date
0038001D|X|dates|Scheduled Discharge Time
00404034|X||Scheduled Human Performers Sequence
0038001E|X||Scheduled Patient Institution Residence
00400006|X||Scheduled Performing Physician's Name
0040000B|X||Scheduled Performing Physician Identification Sequence
00400007|X|desc|Scheduled Procedure Step Description
00400004|X|dates|Scheduled Procedure Step End Date
00400005|X|dates|Scheduled Procedure Step End Time
00404008|X|dates|Scheduled Procedure Step Expiration DateTime
00400009|X||Scheduled Procedure Step ID
00400011|X|device|Scheduled Procedure Step Location
00404010|X|dates|Scheduled Procedure Step Modification DateTime
00400002|X|dates|Scheduled Procedure Step Start Date
00404005|X|dates|Scheduled Procedure Step Start DateTime
00400003|X|dates|Scheduled Procedure Step Start Time
00400001|X|device=C|Scheduled Station AE Title
00404027|X|device|Scheduled Station Geographic Location Code Sequence
00400010|X|device|Scheduled Station Name
00404025|X|device|Scheduled Station Name Code Sequence
00321020|X|device|Scheduled Study Location
00321021|X|device=C|Scheduled Study Location AE Title
00321000|X|dates|Scheduled Study Start Date
00321001|X|dates|Scheduled Study Start Time
00321010|X|dates|Scheduled Study Stop Date
00321011|X|dates|Scheduled Study Stop Time
00181010|X|device|Secondary Capture Device ID
00081303|X|desc|Secondary Diagnoses Code Sequence
0040B036|X|dates|Segment Definition DateTime
0072005E|D|device=C|Selector AE Value
0072005F|D|chars|Selector AS Value
00720061|D|dates|Selector DA Value
00720063|D|dates|Selector DT Value
00720066|D|desc|Selector LO Value
00720068|D|desc|Selector LT Value
00720065|D||Selector OB Value
0072006A|D||Selector PN Value
0072006C|D|desc|Selector SH Value
0072006E|D|desc|Selector ST Value
0072006B|D|dates|Selector TM Value
0072006D|D||Selector UN Value
00720071|D||Selector UR Value
00720070|D|desc|Selector UT Value
00080021|X/D|dates|Series Date
0008103E|X|desc|Series Description
0020000E|U|uids|Series Instance UID
00080031|X/D|dates|Series Time
00380062|X|desc|Service Episode Description
00380060|X||Service Episode ID
300A01B2|X|desc|Setup Technique Description
00100046|X|chars|Sex Parameters for Clinical Use Category Code Sequence
00100042|X|chars=C desc|Sex Parameters for Clinical Use Category Comment
00100047|X|chars|Sex Parameters for Clinical Use Category Reference
00100043|X|chars|Sex Parameters for Clinical Use Category Sequence
300A01A6|X|desc|Shielding Device Description
004006FA|X||Slide Identifier
001021A0|X|chars|Smoking Status
01000420|X|dates|SOP Authorization DateTime
00080018|U|uids|SOP Instance UID
30100015|U|uids|Source Conceptual Volume UID
0018936A|D|dates|Source End DateTime
00640003|U|uids|Source Frame of Reference UID
00340005|D||Source Identifier
00082112|X/Z/U*|uids|Source Image Sequence
300A0216|X|device|Source Manufacturer
04000564|Z|institution|Source of Previous Values
30080105|X/Z|device|Source Serial Number
00189369|D|dates|Source Start DateTime
300A022C|D|dates|Source Strength Reference Date
300A022E|D|dates|Source Strength Reference Time
00380050|X|chars=C|Special Needs
0040050A|X||Specimen Accession Number
00400602|X|desc|Specimen Detailed Description
00400551|D||Specimen Identifier
00400610|Z|struct|Specimen Preparation Sequence
00400600|X|desc|Specimen Short Description
00400554|U|uids|Specimen UID
00189516|X/D|dates|Start Acquisition DateTime
00080055|X|device=C|Station AE Title
00081010|X/Z/D|device|Station Name
00880140|U|uids|Storage Media File-set UID
30060008|Z|dates|Structure Set Date
30060006|X|desc|Structure Set Description
30060002|D|desc|Structure Set Label
30060004|X|desc|Structure Set Name
30060009|Z|dates|Structure Set Time
00321040|X|dates|Study Arrival Date
00321041|X|dates|Study Arrival Time
00324000|X|desc|Study Comments
00321050|X|dates|Study Completion Date
00321051|X|dates|Study Completion Time
00080020|Z|dates|Study Date
00081030|X|desc|Study Description
00200010|Z||Study ID
00320012|X||Study ID Issuer
0020000D|U|uids|Study Instance UID
00320034|X|dates|Study Read Date
00320035|X|dates|Study Read Time
00080030|Z|dates|Study Time
00320032|X|dates|Study Verified Date
00320033|X|dates|Study Verified Time
00440010|X|dates|Substance Administration DateTime
00200200|U|uids|Synchronization Frame of Reference UID
300A0054|U|uids|Table Top Position Alignment UID
00182042|U|uids|Target UID
0040A354|X||Telephone Number (Trial)
0040DB0D|U|uids|Template Extension Creator UID
0040DB0C|U|uids|Template Extension Organization UID
0040DB07|X|dates|Template Local Version
0040DB06|X|dates|Template Version
40004000|X||Text Comments
20300020|X||Text String
00100014|X||Third Person Pronouns Sequence
0040A122|D|dates|Time
0040A112|X|dates|Time of Document Creation or Verbal Transaction (Trial)
00181201|X|device dates|Time of Last Calibration
0018700E|X/D|device dates|Time of Last Detector Calibration
00181014|X|dates|Time of Secondary Capture
00080201|X|dates|Timezone Offset From UTC
00880910|X||Topic Author
00880912|X||Topic Keywords
00880906|X||Topic Subject
00880904|X||Topic Title
00620021|U|uids|Tracking UID
00081195|U|uids|Transaction UID
00185011|X|device|Transducer Identification Sequence
30080024|D|dates|Treatment Control Point Date
30080025|D|dates|Treatment Control Point Time
30080250|X/D|dates|Treatment Date
300A00B2|X/Z|device|Treatment Machine Name
300A0608|D|desc|Treatment Position Group Label
300A0609|U|uids|Treatment Position Group UID
300A0700|U|uids|Treatment Session UID
30100077|X/D|desc|Treatment Site
300A000B|X|desc|Treatment Sites
3010007A|Z|desc|Treatment Technique Notes
30080251|X/D|dates|Treatment Time
300A0736|D|dates|Treatment Tolerance Violation DateTime
300A0734|D|desc|Treatment Tolerance Violation Description
0018100A|X|device|UDI Sequence
0040A124|U||UID
00700006|D|desc|Unformatted Text Value
00181009|X|device|Unique Device Identifier
30100033|D|desc|User Content Label
30100034|D|desc|User Content Long Label
0040A352|X||Verbal Source (Trial)
0040A358|X||Verbal Source Identifier Code Sequence (Trial)
0040A030|D|dates|Verification DateTime
0040A088|Z||Verifying Observer Identification Code Sequence
0040A075|D||Verifying Observer Name
0040A073|D||Verifying Observer Sequence
0040A027|D||Verifying Organization
00384000|X|desc|Visit Comments
0040B020|X/D|struct|Waveform Annotation Sequence
003A0329|X|desc|Waveform Filter Description
00189371|D|device|X-Ray Detector ID
00189373|X|device|X-Ray Detector Label
00189367|D|device|X-Ray Source ID
"""


@dataclass(frozen=True)
class ProfileRule:
    """One row of Table E.1-1."""

    tag: str  # "GGGGEEEE", with "xx" wildcards for repeating groups
    basic: str
    name: str
    options: dict[str, str] = field(default_factory=dict)  # column -> "K" or "C"

    def matches(self, group: int, element: int) -> bool:
        """Whether a repeating-group rule (50xx,xxxx / 60xx,eeee) covers this tag."""
        text = f"{group:04X}{element:04X}"
        return all(p in ("x", c) for p, c in zip(self.tag, text, strict=True))


def _parse_options(text: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for token in text.split():
        column, _, value = token.partition("=")
        if column not in OPTION_COLUMNS:
            raise ValueError(f"Table E.1-1: unknown option column {column!r}")
        options[column] = value or ("C" if column in ("desc", "struct", "graphics", "private")
                                    else "K")
    return options


@lru_cache(maxsize=1)
def load_table() -> tuple[dict[int, ProfileRule], tuple[ProfileRule, ...], ProfileRule]:
    """``(rules by integer tag, repeating-group rules, the private-attributes rule)``."""
    exact: dict[int, ProfileRule] = {}
    repeating: list[ProfileRule] = []
    private = None
    for line in TABLE_E1_1.strip().splitlines():
        tag, basic, options, name = line.split("|")
        rule = ProfileRule(tag=tag, basic=basic, name=name, options=_parse_options(options))
        if tag == "oddxxxxx":
            private = rule
        elif "x" in tag:
            repeating.append(rule)
        else:
            exact[int(tag, 16)] = rule
    if private is None:
        raise ValueError("Table E.1-1: the private attributes row is missing")
    return exact, tuple(repeating), private
