"""Short Korean and English texts that several tests index and search."""

#: Chunks for the BM25 tests (lexical index, PostgreSQL postings).
CORPUS = {
    "a:0": "연차 휴가는 매년 15일이 주어지며 신청은 3일 전까지 해야 한다.",
    "a:1": "병가는 연 10일까지 사용할 수 있다.",
    "b:0": "서버 백업은 매일 새벽 2시에 실행되고 30일 동안 보관한다.",
    "c:0": "Backups run nightly at 02:00 and are kept for thirty days.",
    "c:1": "The restore procedure is tested every month by the operations team.",
}

#: Compounds that kiwi segments alone unlike in a sentence (issue #9).
COMPOUNDS = {
    "k:0": "봉화댐을 점검한 결과 이상이 없었다.",
    "k:1": "봉화댐관리사무소는 방류 계획을 발표했다.",
    "k:2": "봉화군의 여러 댐 가운데 봉화 지역 저수지를 점검했다.",
    "k:3": "연방 수사국에서 발표한 자료에 따르면 수사가 계속된다.",
    "k:4": "수사 결과를 국 단위로 정리했다.",
    "k:5": "상주시에서 열린 축제에 상주 인구가 모였다.",
    "k:6": "상주 직원이 시 청사에서 근무한다.",
    "k:7": "법인등기부 등본을 제출해야 한다.",
    "k:8": "법인은 등기 절차를 마친 뒤 기부금을 냈다.",
    "k:9": "법인등기부를 떼어 보니 임원이 바뀌었다.",
}

#: One paragraph per topic, Korean and English, for shared-batch and stack tests.
TOPICS = [
    "연차 휴가는 입사 1년 이상 직원에게 연 15일이 주어지며, 미사용 휴가는 다음 해 3월까지 쓸 수 있다.",
    "Nightly full backups of every production server run at 02:00 and are kept for thirty days.",
    "봉화댐 수위는 매일 오전 9시에 점검하며, 홍수기에는 두 시간마다 기록한다.",
    "Expense receipts are required for any purchase over fifty dollars, scanned within a week.",
    "배포 동결 기간은 매년 12월 20일부터 1월 3일까지이며, 긴급 수정만 허용된다.",
    "The restore test runs every quarter on a spare host and its report goes to the on-call lead.",
]


#: The issue #27 example: 통합재정통계's two-row header with merged cells over monthly rows (tables tests).
FISCAL_ROWS = [
    ["구 분", "", "통합재정수지", "", "관리재정수지", ""],
    ["", "", "(당월)", "(누계)", "(당월)", "(누계)"],
    ["2011년", "10월", "3,210", "30,050", "△1,100", "△12,400"],
    ["", "11월", "△2,500", "27,550", "△4,000", "△16,400"],
    ["2010년", "10월", "4,100", "25,000", "△900", "△9,000"],
    ["", "11월", "△1,800", "23,200", "△3,100", "△12,100"],
]
