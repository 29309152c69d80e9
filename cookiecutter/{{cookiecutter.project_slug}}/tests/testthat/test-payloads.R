test_that("content types: 415 for what is not supported, Accept picks the answer or 406", {
  expect_identical(request_type("Text/CSV; charset=utf-8"), csv_type)
  expect_identical(request_type("application/x-jsonlines"), jsonlines_type)
  expect_error(request_type("text/plain"), class = "http_error")
  status <- tryCatch(request_type(NULL), http_error = function(e) e$status)
  expect_identical(status, 415)
  expect_identical(response_type(NULL, csv_type), csv_type)
  expect_identical(response_type("*/*", json_type), json_type)
  expect_identical(response_type("text/csv;q=0.5, application/json", csv_type), json_type)
  expect_identical(response_type("application/*", csv_type), json_type)
  status <- tryCatch(response_type("image/png", csv_type), http_error = function(e) e$status)
  expect_identical(status, 406)
})

test_that("CSV, JSON and JSON Lines bodies become the same rows", {
  expected <- matrix(c(5.1, 3.5, 1.4, 0.2, 6.3, 3.3, 6, 2.5), nrow = 2, byrow = TRUE)
  csv <- charToRaw("5.1,3.5,1.4,0.2\r\n\n6.3,\"3.3\",6.0,2.5\n")
  expect_equal(decode_body(csv, csv_type, 4L), expected)
  json <- charToRaw("{\"instances\": [[5.1,3.5,1.4,0.2],[6.3,3.3,6.0,2.5]]}")
  expect_equal(decode_body(json, json_type, 4L), expected)
  lines <- charToRaw("[5.1,3.5,1.4,0.2]\n{\"features\": [6.3,3.3,6.0,2.5]}\n")
  expect_equal(decode_body(lines, jsonlines_type, 4L), expected)
  expect_equal(decode_body(charToRaw("[5.1,3.5,1.4,0.2]"), json_type, 4L), expected[1, , drop = FALSE])
})

test_that("bodies that cannot be read are a 400 with the reason", {
  reason <- function(text, kind = csv_type) {
    tryCatch(decode_body(charToRaw(text), kind, 4L),
             http_error = function(e) paste(e$status, conditionMessage(e)))
  }
  expect_match(reason(""), "^400 the request body is empty")
  expect_match(reason("1,2,3"), "^400 expected 4 features per row, got 3")
  expect_match(reason("1,2,3,4\n1,2,3"), "^400 row 2: expected 4 features, got 3")
  expect_match(reason("1,2,,4"), "^400 row 1: a missing value")
  expect_match(reason("1,2,x,4"), "^400 row 1: 'x' is not a number")
  expect_match(reason("1,2,Inf,4"), "^400 row 1: features must be finite")
  expect_match(reason("{bad", json_type), "^400 malformed JSON")
  expect_match(reason("[[1,2,null,4]]", json_type), "^400 row 1: a missing value")
  expect_match(reason("[[1,2,\"3\",4]]", json_type), "^400 expected rows of numbers")
  expect_match(reason("{\"rows\": []}", json_type), "^400 expected a list of rows")
})

test_that("predictions are encoded one per row, in order", {
  expect_identical(encode_predictions(c("a", "b"), csv_type), "a\nb\n")
  expect_identical(encode_predictions(c(0.5, 2), json_type), "{\"predictions\":[0.5,2]}")
  expect_identical(encode_predictions(c("a", "b"), jsonlines_type), "\"a\"\n\"b\"\n")
  expect_identical(encode_predictions(1 / 3, csv_type), "0.333333333333333\n")
})
