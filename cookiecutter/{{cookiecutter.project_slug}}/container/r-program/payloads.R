# Yours, for requests that are not rows of numbers: request bodies in
# (decode_body), predictions out (encode_predictions), content negotiation.
#
# Requests are rows of numeric features (no label) as text/csv (RFC 4180:
# quoted cells work), application/json ([[...], ...], one row [...], or
# {"instances": [...]}) or application/jsonlines (a row, or {"features": [...]},
# per line). Responses hold one prediction per row, in order: CSV lines,
# {"predictions": [...]} for JSON, a value per line for JSON Lines.

csv_type <- "text/csv"
json_type <- "application/json"
jsonlines_type <- "application/jsonlines"
supported_types <- c(csv_type, json_type, jsonlines_type)
type_aliases <- c("application/x-jsonlines" = jsonlines_type, "application/jsonl" = jsonlines_type)

#' Stop with an HTTP status: serve.R answers it as one plain-text line.
#' @param status 400, 406, 415, ...
#' @param message the reason
http_error <- function(status, message) {
  stop(structure(class = c("http_error", "error", "condition"),
                 list(message = message, call = NULL, status = status)))
}

#' The media type of a header: "Text/CSV; charset=utf-8" -> "text/csv".
media_type <- function(header) {
  kind <- tolower(trimws(strsplit(header %||% "", ";", fixed = TRUE)[[1]][1]))
  if (is.na(kind)) kind <- ""
  if (kind %in% names(type_aliases)) type_aliases[[kind]] else kind
}

#' The request's media type; 415 unless supported.
request_type <- function(header) {
  kind <- media_type(header)
  if (!kind %in% supported_types) {
    shown <- if (nzchar(header %||% "")) sprintf("'%s'", header) else "none"
    http_error(415, sprintf("unsupported Content-Type %s; use one of %s", shown,
                            paste(supported_types, collapse = ", ")))
  }
  kind
}

#' The response's media type from the Accept header, by quality; missing or */*
#' means the request's type. 406 when no supported type is acceptable.
response_type <- function(accept, request_kind) {
  if (is.null(accept) || !nzchar(trimws(accept))) return(request_kind)
  parts <- strsplit(accept, ",", fixed = TRUE)[[1]]
  quality <- vapply(parts, function(part) {
    found <- regmatches(part, regexec(";\\s*q\\s*=\\s*([^;]*)", part))[[1]]
    if (length(found) < 2) return(1)
    value <- suppressWarnings(as.numeric(trimws(found[[2]])))
    if (is.na(value)) 0 else value
  }, numeric(1), USE.NAMES = FALSE)
  for (index in order(-quality, seq_along(parts))) {
    if (quality[[index]] <= 0) next
    kind <- media_type(parts[[index]])
    if (kind %in% c("*/*", "")) return(request_kind)
    if (kind %in% supported_types) return(kind)
    if (endsWith(kind, "/*")) {
      family <- substr(kind, 1, nchar(kind) - 1)
      options <- c(request_kind, supported_types)
      matching <- options[startsWith(options, family)]
      if (length(matching) > 0) return(matching[[1]])
    }
  }
  http_error(406, sprintf("cannot answer with Accept '%s'; use one of %s", accept,
                          paste(supported_types, collapse = ", ")))
}

#' Parse a request body into a numeric matrix, one row per instance.
#' @param body the body, a raw vector
#' @param kind its media type (from request_type)
#' @param width the number of features a row must have (NULL: any)
decode_body <- function(body, kind, width = NULL) {
  text <- rawToChar(body)
  Encoding(text) <- "UTF-8"
  if (!validUTF8(text)) http_error(400, "the body is not UTF-8 text")
  text <- sub("^\ufeff", "", text)  # a byte-order mark is not data
  if (!nzchar(trimws(text))) http_error(400, "the request body is empty")
  rows <- if (kind == csv_type) csv_rows(text) else json_rows(text, kind)
  if (nrow(rows) == 0) http_error(400, "expected one or more rows of numbers")
  if (!is.null(width) && ncol(rows) != width) {
    http_error(400, sprintf("expected %d features per row, got %d", width, ncol(rows)))
  }
  missing <- which(is.na(rows), arr.ind = TRUE)
  if (nrow(missing) > 0) {
    http_error(400, sprintf("row %d: a missing value (empty cell, NaN or null); this model does not accept missing values",
                            missing[1, 1]))
  }
  infinite <- which(is.infinite(rows), arr.ind = TRUE)
  if (nrow(infinite) > 0) {
    http_error(400, sprintf("row %d: features must be finite numbers (no Inf)", infinite[1, 1]))
  }
  rows
}

#' CSV rows (RFC 4180), every row as wide as the first.
csv_rows <- function(text) {
  lines <- strsplit(text, "\r?\n")[[1]]
  lines <- lines[nzchar(trimws(lines))]
  lines_in <- textConnection(lines)
  widths <- utils::count.fields(lines_in, sep = ",", quote = "\"", blank.lines.skip = FALSE)
  close(lines_in)
  if (any(is.na(widths))) http_error(400, "malformed CSV: an unclosed quote")
  bad <- which(widths != widths[[1]])
  if (length(bad) > 0) {
    http_error(400, sprintf("row %d: expected %d features, got %d", bad[[1]], widths[[1]],
                            widths[[bad[[1]]]]))
  }
  cells <- if (!grepl("\"", text, fixed = TRUE)) {
    unlist(strsplit(paste0(lines, ","), ",", fixed = TRUE), use.names = FALSE)  # the fast path
  } else {
    t(as.matrix(utils::read.csv(text = lines, header = FALSE, colClasses = "character",
                                na.strings = character(0))))
  }
  cells <- trimws(as.character(cells))
  values <- suppressWarnings(as.numeric(cells))
  wrong <- which(is.na(values) & nzchar(cells) & !tolower(cells) %in% c("nan", "na"))
  if (length(wrong) > 0) {
    http_error(400, sprintf("row %d: '%s' is not a number", (wrong[[1]] - 1) %/% widths[[1]] + 1,
                            substr(cells[[wrong[[1]]]], 1, 40)))
  }
  matrix(values, ncol = widths[[1]], byrow = TRUE)
}

#' JSON or JSON Lines rows.
json_rows <- function(text, kind) {
  data <- tryCatch({
    if (kind == json_type) {
      jsonlite::fromJSON(text, simplifyVector = FALSE)
    } else {
      lines <- strsplit(text, "\r?\n")[[1]]
      lapply(lines[nzchar(trimws(lines))], function(line) {
        row <- jsonlite::fromJSON(line, simplifyVector = FALSE)
        if (is.list(row) && !is.null(names(row)) && !is.null(row$features)) row$features else row
      })
    }
  }, error = function(e) {
    http_error(400, paste("malformed JSON:", json_problem(e)))
  })
  if (kind == json_type && is.list(data) && !is.null(names(data))) {
    if (is.null(data$instances)) http_error(400, "expected a list of rows or {\"instances\": [...]}")
    data <- data$instances
  }
  if (!is.list(data)) data <- list(data)
  if (length(data) > 0 && !is.list(data[[1]])) data <- list(data)  # one row
  number <- function(cell) {
    if (is.null(cell)) return(NA_real_)  # null: a missing value
    if (!(is.numeric(cell) || is.logical(cell)) || length(cell) != 1) {
      http_error(400, "expected rows of numbers, all of the same length")
    }
    as.numeric(cell)
  }
  rows <- lapply(data, function(row) {
    if (!is.list(row)) http_error(400, "expected rows of numbers, all of the same length")
    vapply(row, number, numeric(1))
  })
  widths <- lengths(rows)
  if (length(rows) > 0 && any(widths != widths[[1]])) {
    http_error(400, "expected rows of numbers, all of the same length")
  }
  matrix(unlist(rows, use.names = FALSE), nrow = length(rows), byrow = TRUE)
}

#' Serialise one prediction per row as `kind`.
#' @return the body, a character string
encode_predictions <- function(predictions, kind) {
  if (is.factor(predictions)) predictions <- as.character(predictions)
  if (kind == csv_type) {
    return(paste0(paste(as.character(predictions), collapse = "\n"), "\n"))
  }
  if (kind == json_type) {
    return(as.character(jsonlite::toJSON(list(predictions = predictions), digits = NA)))
  }
  values <- vapply(seq_along(predictions), function(i) {
    as.character(jsonlite::toJSON(predictions[[i]], auto_unbox = TRUE, digits = NA))
  }, character(1))
  paste0(paste(values, collapse = "\n"), "\n")
}
