/* consent_ledger--1.1--1.2.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION consent_ledger UPDATE TO '1.2'" to load this file. \quit

/*
 * 1.2: ledger correctness and life cycle (encoding version 2, receipts,
 * life cycle without preloading, publications, re-creation, keys).
 * Each section below names what it changes.
 */
