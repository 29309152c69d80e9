#' One RecordIO record: magic, length word (with the multi-part flag), payload, padding.
recordio <- function(payload, flag = 0) {
  bytes <- charToRaw(payload)
  word <- length(bytes) + flag * 2^29
  c(recordio_magic, as.raw(word %/% 256^(0:3) %% 256), bytes, raw((4 - length(bytes) %% 4) %% 4))
}

test_that("RecordIO records are unwrapped, multi-part ones joined", {
  stream <- c(recordio("setosa,1,2\n"), recordio("a,", flag = 1), recordio("", flag = 2), recordio("3,4", 3))
  records <- read_recordio(stream, "pipe")
  expect_identical(vapply(records, rawToChar, ""), c("setosa,1,2\n", "a,3,4"))
})

test_that("a broken RecordIO stream is refused", {
  expect_error(read_recordio(charToRaw("setosa,1,2\n"), "pipe"), "not RecordIO")
  expect_error(read_recordio(utils::head(recordio("setosa,1,2"), -4), "pipe"), "ends in the middle")
})

test_that("CSV inputs parse with their line numbers in errors", {
  table <- parse_csv(charToRaw("\ufeffsetosa,5.1,3.5\nvirginica,6.3,3.3\n"), "f.csv")
  expect_identical(table$labels, c("setosa", "virginica"))
  expect_equal(table$features, matrix(c(5.1, 3.5, 6.3, 3.3), nrow = 2, byrow = TRUE))
  expect_error(parse_csv(charToRaw("a,1,2\nb,1\n"), "f.csv"), "f.csv:2: expected 3 columns")
  expect_error(parse_csv(charToRaw("a,1,x\n"), "f.csv"), "f.csv:1: column 3 is not a finite number")
})
