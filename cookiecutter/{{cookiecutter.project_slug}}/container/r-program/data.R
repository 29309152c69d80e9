# Yours: the training data reader, the one place to change for data that is not CSV.
#
# read_table(channel) turns a channel into what model.R's functions take.
# This one reads CSV: the label in column 1, numeric features after it, no
# header (set header_rows to 1 for files that start with one). It works in
# File, FastFile and Pipe mode alike: channel_inputs() (channels.R) gives
# each input's bytes, whatever the mode.

#' Lines to skip at the top of every file (or Pipe-mode stream or record).
header_rows <- 0L

#' Read every input of a channel.
#' @param channel the channel's name, e.g. "training"
#' @param like the training table, when reading another channel: the widths must agree
#' @param inputs the channel's inputs (raw vectors named after where they came from)
#' @return list(labels = character vector, features = numeric matrix, one row per label)
read_table <- function(channel, like = NULL, inputs = channel_inputs(channel)) {
  tables <- Map(parse_csv, inputs, names(inputs))
  labels <- unlist(lapply(tables, `[[`, "labels"), use.names = FALSE)
  if (length(labels) == 0) {
    stop(sprintf("channel '%s' has no data rows in %d input(s)", channel, length(inputs)),
         call. = FALSE)
  }
  widths <- unique(vapply(Filter(function(t) length(t$labels) > 0, tables),
                          function(t) ncol(t$features), integer(1)))
  if (length(widths) > 1) {
    stop(sprintf("channel '%s': its inputs have different numbers of columns", channel),
         call. = FALSE)
  }
  features <- do.call(rbind, lapply(tables, `[[`, "features"))
  if (!is.null(like) && ncol(features) != ncol(like$features)) {
    stop(sprintf("channel '%s' has %d feature columns, the training channel has %d", channel,
                 ncol(features), ncol(like$features)), call. = FALSE)
  }
  list(labels = labels, features = unname(features))
}

#' Parse one input: CSV text, label first.
#' @param bytes the input, a raw vector
#' @param where its name, for messages
parse_csv <- function(bytes, where) {
  text <- rawToChar(bytes)
  Encoding(text) <- "UTF-8"
  if (!validUTF8(text)) stop(sprintf("%s: not UTF-8 text", where), call. = FALSE)
  text <- sub("^\ufeff", "", text)  # a byte-order mark (Excel adds one) is not data
  lines <- strsplit(text, "\r?\n")[[1]]
  if (header_rows > 0) lines <- lines[-seq_len(min(header_rows, length(lines)))]
  lines <- lines[nzchar(trimws(lines))]
  if (length(lines) == 0) return(list(labels = character(0), features = matrix(0, 0, 0)))
  lines_in <- textConnection(lines)
  widths <- utils::count.fields(lines_in, sep = ",", quote = "\"", blank.lines.skip = FALSE)
  close(lines_in)
  if (any(is.na(widths))) stop(sprintf("%s: malformed CSV (an unclosed quote)", where), call. = FALSE)
  if (widths[[1]] < 2) {
    stop(sprintf("%s:1: a row needs a label and at least one feature, found %d column", where,
                 widths[[1]]), call. = FALSE)
  }
  bad <- which(widths != widths[[1]])
  if (length(bad) > 0) {
    stop(sprintf("%s:%d: expected %d columns (as in row 1), found %d", where, bad[[1]], widths[[1]],
                 widths[[bad[[1]]]]), call. = FALSE)
  }
  table <- utils::read.csv(text = lines, header = FALSE, colClasses = "character",
                           strip.white = TRUE, na.strings = character(0))
  labels <- table[[1]]
  if (any(!nzchar(labels))) {
    stop(sprintf("%s:%d: the label (column 1) is empty", where, which(!nzchar(labels))[[1]]),
         call. = FALSE)
  }
  cells <- as.matrix(table[, -1, drop = FALSE])
  features <- suppressWarnings(matrix(as.numeric(cells), nrow = nrow(cells)))
  wrong <- which(is.na(features) | !is.finite(features), arr.ind = TRUE)
  if (nrow(wrong) > 0) {
    row <- wrong[1, 1]
    column <- wrong[1, 2]
    stop(sprintf("%s:%d: column %d is not a finite number: '%s'", where, row, column + 1,
                 substr(cells[row, column], 1, 40)), call. = FALSE)
  }
  list(labels = labels, features = features)
}
