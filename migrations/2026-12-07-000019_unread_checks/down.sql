DROP TABLE chat_unread_checks;
