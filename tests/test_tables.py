from edgeport.tables import markdown_table, text_table


def test_text_table_aligns_names_left_and_numbers_right():
    out = text_table(["scheme", "file", "status", "p50 ms"], [["int8", "m.tflite", "ok", "2.5"], ["fp32", "x", "ok", "10.25"]])
    assert out.splitlines() == ["scheme  file      status  p50 ms", "------  --------  ------  ------",
                                "int8    m.tflite  ok         2.5", "fp32    x         ok       10.25"]


def test_markdown_table_escapes_pipes_and_marks_number_columns():
    out = markdown_table(["a", "n"], [["x|y", "3"]], right=[False, True])
    assert out.splitlines() == ["| a | n |", "|---|---:|", "| x\\|y | 3 |"]
